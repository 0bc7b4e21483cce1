package privacyapi

import (
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/event"
)

// TestErasureStatusOf folds receipts of a request naming two identifiers,
// notified to two destinations, through each step to done.
func TestErasureStatusOf(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	receipt := func(stage, dest, subject, status string, rows int64) event.Receipt {
		r := event.Receipt{RequestID: "r", Kind: event.ReceiptErasure, Stage: stage, Destination: dest, Subject: subject, Status: status, Rows: rows, At: at}
		if stage == event.StageCollector {
			r.Subjects, r.Operator, r.Reason = 2, "dpo", "user_request"
		}
		if stage == event.StageEnricher {
			r.Destinations = []string{"cn", "intl"}
		}
		return r
	}
	accepted := receipt(event.StageCollector, "", "k1.u", event.StatusAccepted, 0)
	notifiedUser := receipt(event.StageEnricher, "", "k1.u", event.StatusNotified, 0)
	notifiedAnon := receipt(event.StageEnricher, "", "k1.a", event.StatusNotified, 0)
	cnUser := receipt(event.StageSink, "cn", "k1.u", event.StatusDeleted, 7)
	cnAnon := receipt(event.StageSink, "cn", "k1.a", event.StatusDeleted, 2)
	intlUser := receipt(event.StageSink, "intl", "x1.u", event.StatusDeleted, 5)
	intlAnonFailed := receipt(event.StageSink, "intl", "x1.a", event.StatusFailed, 0)
	intlAnon := receipt(event.StageSink, "intl", "x1.a", event.StatusDeleted, 1)

	for _, tc := range []struct {
		name     string
		receipts []event.Receipt
		status   string
		notified bool
		dests    map[string]string
		rows     map[string]int64
	}{
		{"accepted only", []event.Receipt{accepted}, statusPending, false, map[string]string{}, nil},
		{"one of two subjects notified", []event.Receipt{accepted, notifiedUser, cnUser}, statusPending, false,
			map[string]string{"cn": statusPending, "intl": statusPending}, nil},
		{"one destination done", []event.Receipt{accepted, notifiedUser, notifiedAnon, cnUser, cnAnon, intlUser}, statusPending, true,
			map[string]string{"cn": statusDone, "intl": statusPending}, map[string]int64{"cn": 9}},
		{"a failure shows", []event.Receipt{accepted, notifiedUser, notifiedAnon, cnUser, cnAnon, intlUser, intlAnonFailed}, statusPending, true,
			map[string]string{"cn": statusDone, "intl": event.StatusFailed}, map[string]int64{"cn": 9}},
		{"done", []event.Receipt{accepted, notifiedUser, notifiedAnon, cnUser, cnAnon, intlUser, intlAnon}, statusDone, true,
			map[string]string{"cn": statusDone, "intl": statusDone}, map[string]int64{"cn": 9, "intl": 6}},
	} {
		st, ok := erasureStatusOf("r", tc.receipts)
		if !ok || st.Status != tc.status || st.Notified != tc.notified || len(st.Destinations) != len(tc.dests) {
			t.Errorf("%s: %+v, want %s, notified %v, %d destinations", tc.name, st, tc.status, tc.notified, len(tc.dests))
			continue
		}
		for d, want := range tc.dests {
			if got := st.Destinations[d]; got.Status != want || (want == statusDone && (got.RowsDeleted != tc.rows[d] || got.VerifiedAt == nil)) {
				t.Errorf("%s: %s = %+v, want %s with %d rows", tc.name, d, got, want, tc.rows[d])
			}
		}
	}
	if _, ok := erasureStatusOf("r", nil); ok {
		t.Error("a request without receipts is known")
	}
}
