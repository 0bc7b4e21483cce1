package privacyapi

import (
	"context"
	"net/http"
	"time"

	"github.com/consentflow/consentflow/internal/event"
)

// Erasure statuses, overall and per destination.
const (
	statusPending = "pending"
	statusDone    = "done"
)

// erasureStatus is the answer of GET /v1/privacy/erasures/{id}.
type erasureStatus struct {
	RequestID   string    `json:"requestId"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	Operator    string    `json:"operator,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
	// Subjects is how many identifiers the request named.
	Subjects int `json:"subjects"`
	// Notified says the enricher suppressed every subject and told every
	// destination.
	Notified bool `json:"notified"`
	// Destinations are the regions and export destinations notified.
	Destinations map[string]destinationStatus `json:"destinations"`
	Receipts     []event.Receipt              `json:"receipts"`
}

// destinationStatus is one destination's part of an erasure.
type destinationStatus struct {
	// Status is done once the destination's sink verified that no row of
	// any subject remains, failed if it gave up, else pending.
	Status string `json:"status"`
	// RowsDeleted is what its sink found and deleted.
	RowsDeleted int64      `json:"rowsDeleted"`
	VerifiedAt  *time.Time `json:"verifiedAt,omitempty"`
}

// erasureStatusOf folds a request's receipts into its status; ok false
// means no receipt names the request.
func erasureStatusOf(requestID string, receipts []event.Receipt) (erasureStatus, bool) {
	st := erasureStatus{RequestID: requestID, Status: statusPending, Destinations: map[string]destinationStatus{}, Receipts: receipts}
	notified := 0
	for _, r := range receipts {
		if r.Kind != event.ReceiptErasure {
			continue
		}
		switch r.Stage {
		case event.StageCollector:
			st.Reason, st.Operator, st.RequestedAt, st.Subjects = r.Reason, r.Operator, r.RequestedAt, r.Subjects
		case event.StageEnricher:
			notified++
			for _, d := range r.Destinations {
				if _, ok := st.Destinations[d]; !ok {
					st.Destinations[d] = destinationStatus{Status: statusPending}
				}
			}
		}
	}
	if len(receipts) == 0 {
		return st, false
	}
	st.Notified = st.Subjects > 0 && notified >= st.Subjects
	done := st.Notified && len(st.Destinations) > 0
	for name, d := range st.Destinations {
		verified := 0
		for _, r := range receipts {
			if r.Stage != event.StageSink || r.Destination != name {
				continue
			}
			switch r.Status {
			case event.StatusDeleted:
				verified++
				d.RowsDeleted += r.Rows
				if d.VerifiedAt == nil || r.At.After(*d.VerifiedAt) {
					at := r.At
					d.VerifiedAt = &at
				}
			case event.StatusFailed:
				d.Status = event.StatusFailed
			}
		}
		if d.Status != event.StatusFailed && verified >= st.Subjects {
			d.Status = statusDone
		} else {
			d.VerifiedAt = nil
			done = false
		}
		st.Destinations[name] = d
	}
	if done {
		st.Status = statusDone
	}
	return st, true
}

// statusWait bounds how long a status request waits for the receipts
// written before it to be read.
const statusWait = 2 * time.Second

// handleErasureStatus serves GET /v1/privacy/erasures/{id}.
func (a *API) handleErasureStatus(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := a.privacyRequest(w, r, func(res result) { res.write(w) }); !ok {
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), statusWait)
	defer cancel()
	if err := a.state.receiptsTail.WaitCaughtUp(ctx); err != nil {
		a.log.Warn("receipts not caught up; answering what is known", "err", err)
	}
	st, ok := erasureStatusOf(id, a.state.receipts.of(id))
	if !ok {
		fail(http.StatusNotFound, "no erasure request %q (ids are what POST /v1/privacy/erasures answered)", id).write(w)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
