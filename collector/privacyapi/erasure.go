package privacyapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
)

// maxErasureBytes bounds an erasure or export request's body.
const maxErasureBytes = 16 << 10

// Erasure reasons, the values of the reason field and of the reason label
// of privacy_erasure_requests_total.
var erasureReasons = event.ErasureReasons

// erasureRefusalCodes are the status codes an erasure request is refused
// with, the values of the code label of privacy_erasure_requests_refused_total.
var erasureRefusalCodes = []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable}

// erasureAccepted is the 202 answer.
type erasureAccepted struct {
	RequestID string `json:"requestId"`
}

// handleErasure serves POST /v1/privacy/erasures.
func (a *API) handleErasure(w http.ResponseWriter, r *http.Request) {
	refuse := func(res result) {
		a.metrics.erasureRefusals.WithLabelValues(strconv.Itoa(res.code)).Inc()
		res.write(w)
	}
	op, req, ok := a.subjectRequest(w, r, refuse, true)
	if !ok {
		return
	}
	requestID := event.NewID()
	// Whether a device's consent record is tombstoned depends on the
	// consent recorded under a userId spelt alike (consentstore's
	// KeyTaken).
	if err := a.waitConsent(r.Context()); err != nil {
		res := fail(http.StatusServiceUnavailable, "erasure not recorded: the consent state could not be read in time, retry later")
		res.retryAfter = time.Second
		refuse(res)
		return
	}
	records, err := a.erasureRecords(req, requestID, op.name)
	if err != nil {
		refuse(fail(http.StatusInternalServerError, "encode erasure record: %v", err))
		return
	}
	if err := a.produce(records); err != nil {
		// The error never holds a record's key or value.
		a.log.Warn("erasure request not recorded; answering 503", "request_id", requestID, "operator", op.name, "err", err)
		res := fail(http.StatusServiceUnavailable, "erasure not recorded: Kafka did not acknowledge it in time, retry later (erasing twice is harmless)")
		res.retryAfter = time.Second
		refuse(res)
		return
	}
	a.metrics.erasures.WithLabelValues(req.reason).Inc()
	// Never the identifiers themselves: the log would keep what was erased.
	a.log.Info("erasure request recorded", "request_id", requestID, "operator", op.name, "reason", req.reason)
	writeJSON(w, http.StatusAccepted, erasureAccepted{RequestID: requestID})
}

// subjectRequest is privacyRequest, then the body decoded as an erasure's
// (withReason) or an export's, refused with 400 naming the field.
func (a *API) subjectRequest(w http.ResponseWriter, r *http.Request, refuse func(result), withReason bool) (operator, subjectRequest, bool) {
	op, body, ok := a.privacyRequest(w, r, refuse)
	if !ok {
		return operator{}, subjectRequest{}, false
	}
	req, err := decodeSubject(body, withReason)
	if err != nil {
		refuse(fail(http.StatusBadRequest, "%v", err))
		return operator{}, subjectRequest{}, false
	}
	return op, req, true
}

// privacyRequest authenticates an operator, then reads the body. Without a
// token, nothing more is read.
func (a *API) privacyRequest(w http.ResponseWriter, r *http.Request, refuse func(result)) (operator, []byte, bool) {
	op, ok := a.operator(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="consentflow privacy"`)
		a.log.Warn("privacy request refused: no or unknown operator token", "path", r.URL.Path, "remote", r.RemoteAddr)
		refuse(fail(http.StatusUnauthorized, "missing or unknown operator token (send Authorization: Bearer <token>)"))
		return operator{}, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxErasureBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			refuse(fail(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", maxErasureBytes))
		} else {
			refuse(fail(http.StatusBadRequest, "read body: %v", err))
		}
		return operator{}, nil, false
	}
	return op, body, true
}

// erasureRecords builds, for each identifier of req, its erasure record and
// its consent tombstone.
func (a *API) erasureRecords(req subjectRequest, requestID, operator string) ([]*kgo.Record, error) {
	now := a.now().UTC()
	var records []*kgo.Record
	subjects := 0
	for _, id := range []struct{ kind, value string }{{event.SubjectUserID, req.userID}, {event.SubjectAnonymousID, req.anonymousID}} {
		if id.value == "" {
			continue
		}
		subjects++
		rec := event.ErasureRecord{
			SchemaVersion: event.SchemaVersion,
			RequestID:     requestID,
			Reason:        req.reason,
			Operator:      operator,
			RequestedAt:   now,
			SubjectKind:   id.kind,
			KeyCheck:      a.state.keyCheck(),
		}
		suppression := a.consent.SuppressionRecords(a.cfg.Topics.Erasures.Name, id.value, rec)
		value, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		records = append(append(records, suppression...), &kgo.Record{Topic: a.cfg.Topics.ErasureRequests.Name, Key: []byte(id.value), Value: value})
		// A nil Value is a tombstone: compaction removes the consent state.
		// Not for a device spelt like a user with consent: the record under
		// that key is the user's (the device never had one, KeyTaken).
		if id.kind == event.SubjectUserID || !a.consent.KeyTaken(id.value) {
			records = append(records, &kgo.Record{Topic: a.cfg.Topics.Consent.Name, Key: []byte(id.value)})
		}
	}
	receipt, err := a.state.receipt(&event.Receipt{RequestID: requestID, Kind: event.ReceiptErasure, Stage: event.StageCollector,
		Status: event.StatusAccepted, Operator: operator, Reason: req.reason, Subject: a.state.subject(req),
		RequestedAt: now, At: now, Subjects: subjects})
	if err != nil {
		return nil, err
	}
	return append(records, receipt), nil
}

// operator finds the operator whose token the request carries as
// "Authorization: Bearer <token>". Every token is compared in constant time
// and the loop never exits early, so timing says nothing about near misses.
func (a *API) operator(r *http.Request) (operator, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return operator{}, false
	}
	given := sha256.Sum256([]byte(token))
	match := -1
	for i := range a.operators {
		if subtle.ConstantTimeCompare(given[:], a.operators[i].tokenHash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return operator{}, false
	}
	return a.operators[match], true
}

// subjectRequest is a decoded, valid erasure or export request body.
type subjectRequest struct {
	userID, anonymousID, reason string
}

// decodeSubject parses and checks an erasure request body (withReason: a
// JSON object of userId and/or anonymousId and reason, nothing else) or an
// export request body (the same without reason). Errors name the field.
func decodeSubject(body []byte, withReason bool) (subjectRequest, error) {
	erasureFields := []string{"userId", "anonymousId"}
	if withReason {
		erasureFields = append(erasureFields, "reason")
	}
	var fields map[string]jsontext.Value
	// json v2's defaults refuse duplicate names and invalid UTF-8, so a
	// body cannot name two subjects under one field.
	if err := jsonv2.Unmarshal(body, &fields); err != nil || fields == nil {
		if err == nil {
			err = errors.New("got null")
		}
		return subjectRequest{}, &event.FieldError{Field: "(body)", Msg: fmt.Sprintf("must be a JSON object of %s: %v", strings.Join(erasureFields, ", "), err)}
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names) // report the same field every time
	var req subjectRequest
	for _, name := range names {
		if !slices.Contains(erasureFields, name) {
			return subjectRequest{}, &event.FieldError{Field: name, Msg: fmt.Sprintf("unknown field (want %s)", strings.Join(erasureFields, ", "))}
		}
		v := fields[name]
		var s string
		if v.Kind() != '"' || jsonv2.Unmarshal(v, &s) != nil {
			return subjectRequest{}, &event.FieldError{Field: name, Msg: "must be a string"}
		}
		switch {
		case s == "":
			return subjectRequest{}, &event.FieldError{Field: name, Msg: "must not be empty (leave it out instead)"}
		case name != "reason" && len(s) > event.MaxIDBytes:
			return subjectRequest{}, &event.FieldError{Field: name, Msg: fmt.Sprintf("is %d bytes, more than %d", len(s), event.MaxIDBytes)}
		}
		switch name {
		case "userId":
			req.userID = s
		case "anonymousId":
			req.anonymousID = s
		case "reason":
			if !slices.Contains(erasureReasons, s) {
				return subjectRequest{}, &event.FieldError{Field: "reason", Msg: fmt.Sprintf("must be one of %s, got %q", strings.Join(erasureReasons, ", "), s)}
			}
			req.reason = s
		}
	}
	switch {
	case req.userID == "" && req.anonymousID == "":
		return subjectRequest{}, &event.FieldError{Field: "userId", Msg: "userId or anonymousId is required"}
	case withReason && req.reason == "":
		return subjectRequest{}, &event.FieldError{Field: "reason", Msg: fmt.Sprintf("is required: one of %s", strings.Join(erasureReasons, ", "))}
	}
	return req, nil
}
