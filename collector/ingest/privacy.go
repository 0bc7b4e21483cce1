package ingest

// The privacy admin API: erasure requests, on the admin listener only.
//
// POST /v1/privacy/erasures, with an operator's bearer token, records an
// erasure of the subject(s) it names. For each identifier given (userId,
// anonymousId) it produces, in one request to the producer:
//
//   - a record keyed by the identifier to topics.erasures (privacy.erasures,
//     compacted, never tombstoned): the suppression list the enricher reads;
//     its value is an ErasureRecord, never null;
//   - a tombstone keyed by the identifier to topics.consent, so the subject's
//     consent state is forgotten.
//
// Delivery: the answer is 202 only after Kafka acknowledged every one of
// those records (acks=all, idempotent producer); on a produce error or
// timeout it is 503 with Retry-After, and some of the records may still
// have landed. A retry is safe: erasing a subject twice leaves it erased (the
// retry gets a new request id, and compaction keeps the latest record).
//
// Not built yet: deleting stored rows (notices to the sinks), request
// status and export.

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

// ErasureRoute is the ServeMux pattern of the erasure endpoint.
const ErasureRoute = "POST /v1/privacy/erasures"

// maxErasureBytes bounds an erasure request's body.
const maxErasureBytes = 16 << 10

// Erasure reasons, the values of the reason field and of the reason label
// of privacy_erasure_requests_total.
var erasureReasons = []string{"account_cancelled", "consent_withdrawn", "user_request"}

// erasureRefusalCodes are the status codes an erasure request is refused
// with, the values of the code label of privacy_erasure_requests_refused_total.
var erasureRefusalCodes = []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable}

// Subject kinds of an ErasureRecord: which identifier its key is.
const (
	SubjectUserID      = "userId"
	SubjectAnonymousID = "anonymousId"
)

// ErasureRecord is the value of a privacy.erasures record. The record's key
// is the erased identifier; the value never repeats it.
type ErasureRecord struct {
	SchemaVersion int    `json:"schemaVersion"`
	RequestID     string `json:"requestId"`
	// Reason is account_cancelled, consent_withdrawn or user_request.
	Reason string `json:"reason"`
	// Operator is the name (privacy.operators[].name) of who asked.
	Operator    string    `json:"operator"`
	RequestedAt time.Time `json:"requestedAt"`
	// SubjectKind says which identifier the key is: userId or anonymousId.
	SubjectKind string `json:"subjectKind"`
}

// operator is a configured operator with the hash of its token: hashes all
// have one length, so comparing them says nothing about the token's.
type operator struct {
	name      string
	tokenHash [sha256.Size]byte
}

// AdminRoutes are the privacy admin API's handlers by ServeMux pattern, for
// the admin server (obs.Admin.Handle). They authenticate operators
// themselves and must never be served on the public listener.
func (s *Server) AdminRoutes() map[string]http.Handler {
	return map[string]http.Handler{ErasureRoute: http.HandlerFunc(s.handleErasure)}
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
	// Authenticate before reading the body: without a token, nothing more
	// is read.
	op, ok := s.operator(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="consentflow privacy"`)
		s.log.Warn("erasure request refused: no or unknown operator token", "remote", r.RemoteAddr)
		refuse(fail(http.StatusUnauthorized, "missing or unknown operator token (send Authorization: Bearer <token>)"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxErasureBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			refuse(fail(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", maxErasureBytes))
			return
		}
		refuse(fail(http.StatusBadRequest, "read body: %v", err))
		return
	}
	req, err := decodeErasure(body)
	if err != nil {
		refuse(fail(http.StatusBadRequest, "%v", err))
		return
	}
	requestID := newMessageID()
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

// erasureRecords builds, for each identifier of req, its erasure record and
// its consent tombstone.
func (s *Server) erasureRecords(req erasureRequest, requestID, operator string) ([]*kgo.Record, error) {
	now := s.now().UTC()
	var records []*kgo.Record
	for _, id := range []struct{ kind, value string }{{SubjectUserID, req.userID}, {SubjectAnonymousID, req.anonymousID}} {
		if id.value == "" {
			continue
		}
		value, err := json.Marshal(ErasureRecord{
			SchemaVersion: event.SchemaVersion,
			RequestID:     requestID,
			Reason:        req.reason,
			Operator:      operator,
			RequestedAt:   now,
			SubjectKind:   id.kind,
		})
		if err != nil {
			return nil, err
		}
		records = append(records,
			&kgo.Record{Topic: s.cfg.Topics.Erasures.Name, Key: []byte(id.value), Value: value},
			// A nil Value is a tombstone: compaction removes the consent state.
			&kgo.Record{Topic: s.cfg.Topics.Consent.Name, Key: []byte(id.value)})
	}
	return records, nil
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

// erasureRequest is a decoded, valid erasure request body.
type erasureRequest struct {
	userID, anonymousID, reason string
}

// erasureFields are the fields an erasure request may hold.
var erasureFields = []string{"userId", "anonymousId", "reason"}

// decodeErasure parses and checks an erasure request body: a JSON object of
// userId and/or anonymousId and reason, nothing else. Errors name the field.
func decodeErasure(body []byte) (erasureRequest, error) {
	var fields map[string]jsontext.Value
	// json v2's defaults refuse duplicate names and invalid UTF-8, so a
	// body cannot name two subjects under one field.
	if err := jsonv2.Unmarshal(body, &fields); err != nil || fields == nil {
		if err == nil {
			err = errors.New("got null")
		}
		return erasureRequest{}, &event.FieldError{Field: "(body)", Msg: fmt.Sprintf("must be a JSON object of %s: %v", strings.Join(erasureFields, ", "), err)}
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names) // report the same field every time
	var req erasureRequest
	for _, name := range names {
		if !slices.Contains(erasureFields, name) {
			return erasureRequest{}, &event.FieldError{Field: name, Msg: fmt.Sprintf("unknown field (want %s)", strings.Join(erasureFields, ", "))}
		}
		v := fields[name]
		var s string
		if v.Kind() != '"' || jsonv2.Unmarshal(v, &s) != nil {
			return erasureRequest{}, &event.FieldError{Field: name, Msg: "must be a string"}
		}
		switch {
		case s == "":
			return erasureRequest{}, &event.FieldError{Field: name, Msg: "must not be empty (leave it out instead)"}
		case name != "reason" && len(s) > event.MaxIDBytes:
			return erasureRequest{}, &event.FieldError{Field: name, Msg: fmt.Sprintf("is %d bytes, more than %d", len(s), event.MaxIDBytes)}
		}
		switch name {
		case "userId":
			req.userID = s
		case "anonymousId":
			req.anonymousID = s
		case "reason":
			if !slices.Contains(erasureReasons, s) {
				return erasureRequest{}, &event.FieldError{Field: "reason", Msg: fmt.Sprintf("must be one of %s, got %q", strings.Join(erasureReasons, ", "), s)}
			}
			req.reason = s
		}
	}
	switch {
	case req.userID == "" && req.anonymousID == "":
		return erasureRequest{}, &event.FieldError{Field: "userId", Msg: "userId or anonymousId is required"}
	case req.reason == "":
		return erasureRequest{}, &event.FieldError{Field: "reason", Msg: fmt.Sprintf("is required: one of %s", strings.Join(erasureReasons, ", "))}
	}
	return req, nil
}
