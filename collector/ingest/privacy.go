package ingest

// The privacy admin API, on a listener of its own (privacy.listen,
// collector/privacyapi), for operators with a bearer token
// (privacy.operators):
//
//   - POST /v1/privacy/erasures records an erasure of the subject(s) it
//     names. For each identifier given (userId, anonymousId) it produces a
//     record keyed by the identifier's in-region pseudonym to
//     topics.erasures (privacy.erasures, compacted, never tombstoned: the
//     suppression list the enricher reads, which holds no raw identifier),
//     a record keyed by the identifier itself to topics.erasure_requests
//     (deleted after its retention), and a tombstone of the identifier to
//     topics.consent; and one receipt (stage collector, status accepted) to
//     topics.receipts. The enricher reads the request, passes the erasure
//     on to every region and destination as their pseudonyms, whose sinks
//     delete the rows and write receipts of their own.
//   - GET /v1/privacy/erasures/{id} answers a request's status from the
//     receipts: done once every destination the enricher notified has
//     verified the deletion of every subject of the request.
//   - POST /v1/privacy/exports answers every row the region's database
//     holds about a subject (its userId's, its anonymousId's, and those of
//     the anonymousIds linked to the userId), read with a read-only user.
//
// Delivery: an erasure is answered 202 only after Kafka acknowledged every
// one of its records (acks=all, idempotent producer); on a produce error or
// timeout it is 503 with Retry-After, and some of the records may still
// have landed. A retry is safe: erasing a subject twice leaves it erased (the
// retry gets a new request id, and compaction keeps the latest record).
//
// Raw identifiers never reach a log or a receipt: both name the subject by
// its in-region pseudonym (privacy.pseudonym).

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

// ServeMux patterns of the privacy admin API.
const (
	ErasureRoute       = "POST /v1/privacy/erasures"
	ErasureStatusRoute = "GET /v1/privacy/erasures/{id}"
	ExportRoute        = "POST /v1/privacy/exports"
)

// maxErasureBytes bounds an erasure or export request's body.
const maxErasureBytes = 16 << 10

// Erasure reasons, the values of the reason field and of the reason label
// of privacy_erasure_requests_total.
var erasureReasons = event.ErasureReasons

// erasureRefusalCodes are the status codes an erasure request is refused
// with, the values of the code label of privacy_erasure_requests_refused_total.
var erasureRefusalCodes = []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable}

// operator is a configured operator with the hash of its token: hashes all
// have one length, so comparing them says nothing about the token's.
type operator struct {
	name      string
	tokenHash [sha256.Size]byte
}

// AdminRoutes are the privacy admin API's handlers by ServeMux pattern, for
// the privacy API's own listener (collector/privacyapi). They authenticate
// operators themselves and must never be served on the public listener,
// nor on the admin port that probes and Prometheus reach.
func (s *Server) AdminRoutes() map[string]http.Handler {
	return map[string]http.Handler{
		ErasureRoute:       http.HandlerFunc(s.handleErasure),
		ErasureStatusRoute: http.HandlerFunc(s.handleErasureStatus),
		ExportRoute:        http.HandlerFunc(s.handleExport),
	}
}

// erasureAccepted is the 202 answer.
type erasureAccepted struct {
	RequestID string `json:"requestId"`
}

// handleErasure serves POST /v1/privacy/erasures.
func (s *Server) handleErasure(w http.ResponseWriter, r *http.Request) {
	refuse := func(res result) {
		s.metrics.erasureRefusals.WithLabelValues(strconv.Itoa(res.code)).Inc()
		res.write(w)
	}
	op, body, ok := s.privacyRequest(w, r, refuse)
	if !ok {
		return
	}
	req, err := decodeSubject(body, true)
	if err != nil {
		refuse(fail(http.StatusBadRequest, "%v", err))
		return
	}
	requestID := event.NewID()
	// Which records to write depends on the consent and erasures recorded
	// under the other kind of identifier spelt alike (consentstore's
	// ErasureKind, KeyTaken).
	if err := s.consent.caughtUp.Wait(r.Context()); err != nil {
		res := fail(http.StatusServiceUnavailable, "erasure not recorded: the consent state could not be read in time, retry later")
		res.retryAfter = time.Second
		refuse(res)
		return
	}
	records, err := s.erasureRecords(req, requestID, op.name)
	if err != nil {
		refuse(fail(http.StatusInternalServerError, "encode erasure record: %v", err))
		return
	}
	if err := s.produce(records); err != nil {
		// The error never holds a record's key or value.
		s.log.Warn("erasure request not recorded; answering 503", "request_id", requestID, "operator", op.name, "err", err)
		res := fail(http.StatusServiceUnavailable, "erasure not recorded: Kafka did not acknowledge it in time, retry later (erasing twice is harmless)")
		res.retryAfter = time.Second
		refuse(res)
		return
	}
	s.metrics.erasures.WithLabelValues(req.reason).Inc()
	// Never the identifiers themselves: the log would keep what was erased.
	s.log.Info("erasure request recorded", "request_id", requestID, "operator", op.name, "reason", req.reason)
	writeJSON(w, http.StatusAccepted, erasureAccepted{RequestID: requestID})
}

// privacyRequest authenticates an operator, then reads the body. Without a
// token, nothing more is read.
func (s *Server) privacyRequest(w http.ResponseWriter, r *http.Request, refuse func(result)) (operator, []byte, bool) {
	op, ok := s.operator(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="consentflow privacy"`)
		s.log.Warn("privacy request refused: no or unknown operator token", "path", r.URL.Path, "remote", r.RemoteAddr)
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
func (s *Server) erasureRecords(req subjectRequest, requestID, operator string) ([]*kgo.Record, error) {
	now := s.now().UTC()
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
			KeyCheck:      s.privacy.keyCheck(),
		}
		suppression := s.consent.store.SuppressionRecords(s.cfg.Topics.Erasures.Name, id.value, rec)
		value, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		records = append(append(records, suppression...), &kgo.Record{Topic: s.cfg.Topics.ErasureRequests.Name, Key: []byte(id.value), Value: value})
		// A nil Value is a tombstone: compaction removes the consent state.
		// Not for a device spelt like a user with consent: the record under
		// that key is the user's (the device never had one, KeyTaken).
		if id.kind == event.SubjectUserID || !s.consent.store.KeyTaken(id.value) {
			records = append(records, &kgo.Record{Topic: s.cfg.Topics.Consent.Name, Key: []byte(id.value)})
		}
	}
	receipt, err := s.privacy.receipt(&event.Receipt{RequestID: requestID, Kind: event.ReceiptErasure, Stage: event.StageCollector,
		Status: event.StatusAccepted, Operator: operator, Reason: req.reason, Subject: s.privacy.subject(req),
		RequestedAt: now, At: now, Subjects: subjects})
	if err != nil {
		return nil, err
	}
	return append(records, receipt), nil
}

// operator finds the operator whose token the request carries as
// "Authorization: Bearer <token>". Every token is compared in constant time
// and the loop never exits early, so timing says nothing about near misses.
func (s *Server) operator(r *http.Request) (operator, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return operator{}, false
	}
	given := sha256.Sum256([]byte(token))
	match := -1
	for i := range s.operators {
		if subtle.ConstantTimeCompare(given[:], s.operators[i].tokenHash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return operator{}, false
	}
	return s.operators[match], true
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
