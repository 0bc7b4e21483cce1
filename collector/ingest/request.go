package ingest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	// encoding/json's semantics on the v2 engine: see internal/event.
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/consentflow/consentflow/internal/event"
)

// payload is what one ingest request carries, whatever its route: the
// events still raw (each is validated on its own, so one bad event does not
// sink the others) and what the envelope around them says.
type payload struct {
	// WriteKey from the body, for clients that cannot send Basic auth.
	WriteKey string
	// SentAt is the batch's upload time, for clock correction of events
	// that carry no sentAt of their own.
	SentAt time.Time
	// Context is the batch's context; each event's own context wins key by
	// key.
	Context json.RawMessage
	// Events are decoded already where the one-pass decoder could.
	Events []event.BatchEvent
	// Type is the event type the route implies ("" for /v1/batch).
	Type string
}

// envelopeFields are the top-level fields of a batch body or single event
// that the collector itself reads.
type envelopeFields struct {
	WriteKey string          `json:"writeKey"`
	SentAt   string          `json:"sentAt"`
	Context  json.RawMessage `json:"context"`
}

// batchBody is a /v1/batch body, decoded in one pass: the events stay raw
// so each is validated, and refused, on its own.
type batchBody struct {
	envelopeFields
	Batch []json.RawMessage `json:"batch"`
}

// decodeBatch parses a /v1/batch body: in one pass, events included,
// when it is plain (event.Shape.DecodeBatch), else with decodeBatchStrict.
// b is memory to decode into (see event.Shape.DecodeBatch).
func decodeBatch(body []byte, shape event.Shape, b *event.Batch) (payload, error) {
	if !shape.DecodeBatch(body, b) {
		return decodeBatchStrict(body)
	}
	sentAt, err := event.ParseTime(b.SentAt)
	if err != nil {
		return payload{}, fmt.Errorf("sentAt: %w", err)
	}
	if b.Events == nil {
		return payload{}, errors.New("batch: is required and must be an array of events")
	}
	return payload{WriteKey: b.WriteKey, SentAt: sentAt, Context: b.Context, Events: b.Events}, nil
}

// decodeBatchStrict parses a /v1/batch body with encoding/json's
// semantics, leaving each event raw. It is the reference for decodeBatch,
// and words every error.
func decodeBatchStrict(body []byte) (payload, error) {
	var f batchBody
	if err := jsonv1.Unmarshal(body, &f); err != nil {
		var typeErr *jsonv1.UnmarshalTypeError
		switch {
		case !errors.As(err, &typeErr) || typeErr.Field == "":
			return payload{}, fmt.Errorf("invalid JSON: %w", err)
		case typeErr.Field == "batch":
			return payload{}, errors.New("batch: must be an array of events")
		default:
			return payload{}, fmt.Errorf("%s: must be a %s, got %s", typeErr.Field, typeErr.Type, typeErr.Value)
		}
	}
	sentAt, err := event.ParseTime(f.SentAt)
	if err != nil {
		return payload{}, fmt.Errorf("sentAt: %w", err)
	}
	if f.Batch == nil {
		return payload{}, errors.New("batch: is required and must be an array of events")
	}
	events := make([]event.BatchEvent, len(f.Batch))
	for i, raw := range f.Batch {
		events[i] = event.RawEvent(raw)
	}
	return payload{WriteKey: f.WriteKey, SentAt: sentAt, Context: f.Context, Events: events}, nil
}

// decodeSingle parses the body of /v1/track and its siblings: one event,
// whose type is the route's. A plain body is read in one pass
// (event.Shape.DecodeSingle), anything else with encoding/json's semantics.
func decodeSingle(body []byte, typ string, shape event.Shape) (payload, error) {
	if be, writeKey, ok := shape.DecodeSingle(body); ok {
		return payload{WriteKey: writeKey, Events: []event.BatchEvent{be}, Type: typ}, nil
	}
	return decodeSingleStrict(body, typ)
}

// decodeSingleStrict parses a single event's body with encoding/json's
// semantics, leaving the event raw. It is the reference for decodeSingle,
// and words every error.
func decodeSingleStrict(body []byte, typ string) (payload, error) {
	var f envelopeFields
	if err := jsonv1.Unmarshal(body, &f); err != nil {
		return payload{}, fmt.Errorf("invalid JSON: %w", err)
	}
	return payload{WriteKey: f.WriteKey, Events: []event.BatchEvent{event.RawEvent(body)}, Type: typ}, nil
}

// decodeQueryEvent parses the data parameter of /v1/pixel and /v1/redirect:
// one event as base64 JSON, in either base64 alphabet, padded or not, since
// pages build these URLs by hand.
func decodeQueryEvent(data string) (payload, error) {
	if data == "" {
		return payload{}, fmt.Errorf("data: is required (the event as base64 JSON)")
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(strings.TrimSpace(data)); err == nil {
			break
		}
	}
	if err != nil {
		return payload{}, fmt.Errorf("data: is not base64: %w", err)
	}
	var f struct {
		envelopeFields
		Type string `json:"type"`
	}
	if err := jsonv1.Unmarshal(raw, &f); err != nil {
		return payload{}, fmt.Errorf("data: invalid JSON: %w", err)
	}
	if f.Type == "" {
		f.Type = "track" // a beacon or a click is a track event unless it says otherwise
	}
	return payload{WriteKey: f.WriteKey, Events: []event.BatchEvent{event.RawEvent(raw)}, Type: f.Type}, nil
}

// batchContext is a batch's context, parsed once per request.
type batchContext map[string]json.RawMessage

func parseBatchContext(raw json.RawMessage) (batchContext, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var ctx batchContext
	if err := jsonv1.Unmarshal(raw, &ctx); err != nil {
		return nil, &event.FieldError{Field: "context", Msg: "must be an object"}
	}
	return ctx, nil
}

// merge returns the event's context with the batch's keys filled in where
// the event has none. Values are copied as they came, not re-escaped.
func (batch batchContext) merge(own json.RawMessage) (json.RawMessage, error) {
	if len(batch) == 0 {
		return own, nil
	}
	merged := make(batchContext, len(batch))
	for k, v := range batch {
		merged[k] = v
	}
	if len(own) > 0 && !bytes.Equal(own, []byte("null")) {
		var mine batchContext
		if err := jsonv1.Unmarshal(own, &mine); err != nil {
			return nil, &event.FieldError{Field: "context", Msg: "must be an object"}
		}
		for k, v := range mine {
			merged[k] = v
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(merged); err != nil {
		return nil, fmt.Errorf("encode context: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
