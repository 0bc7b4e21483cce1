package kafkax

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter record headers. Reason is a short code from a fixed set per
// stage (usable as a metric label); Error is the first error, said without
// what the input held; Topic, Partition and Offset locate the source
// record, and ValueSHA256 and ValueBytes let an operator check that the
// record fetched from there is the one refused.
const (
	HeaderReason      = "dlq.reason"
	HeaderStage       = "dlq.stage"
	HeaderError       = "dlq.error"
	HeaderTopic       = "dlq.topic"
	HeaderPartition   = "dlq.partition"
	HeaderOffset      = "dlq.offset"
	HeaderValueSHA256 = "dlq.value_sha256"
	HeaderValueBytes  = "dlq.value_bytes"
)

// DeadLetterPointer is a dead letter's value: the facts of its headers as
// JSON, for tools that print values and not headers. It holds nothing the
// source record held.
type DeadLetterPointer struct {
	Reason      string `json:"reason"`
	Stage       string `json:"stage"`
	Error       string `json:"error"`
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	ValueSHA256 string `json:"valueSha256"`
	ValueBytes  int    `json:"valueBytes"`
}

// Redacter is an error whose message quotes what its input held (a value,
// a timestamp, a property name) and that can say what went wrong without
// it: dead letters carry RedactedError, never Error.
type Redacter interface {
	error
	RedactedError() string
}

// DeadLetter is the dead letter of a record a stage cannot process: a
// pointer to it, not a copy. It has no key, its value is its
// DeadLetterPointer, and its headers say why (reason, stage, the error as
// deadLetterError says it), where the record is (topic, partition, offset)
// and how to know it (the SHA-256 and length of its value). None of the
// record's headers is kept.
//
// Why: a dead-letter topic is read by operators and erased by no one. A
// copy would keep a subject's data past its erasure for as long as the
// topic keeps records; a pointer keeps nothing of it, and the record it
// points at lives in its own topic only for that topic's retention, where
// erasure's suppression already covers it (README, "Dead letters").
func DeadLetter(rec *kgo.Record, topic, stage, reason string, err error) *kgo.Record {
	sum := sha256.Sum256(rec.Value)
	p := DeadLetterPointer{
		Reason: reason, Stage: stage, Error: deadLetterError(err, rec),
		Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
		ValueSHA256: hex.EncodeToString(sum[:]), ValueBytes: len(rec.Value),
	}
	value, _ := json.Marshal(p) // strings and integers: never fails
	return &kgo.Record{Topic: topic, Value: value, Headers: []kgo.RecordHeader{
		{Key: HeaderReason, Value: []byte(p.Reason)},
		{Key: HeaderStage, Value: []byte(p.Stage)},
		{Key: HeaderError, Value: []byte(p.Error)},
		{Key: HeaderTopic, Value: []byte(p.Topic)},
		{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(p.Partition)))},
		{Key: HeaderOffset, Value: []byte(strconv.FormatInt(p.Offset, 10))},
		{Key: HeaderValueSHA256, Value: []byte(p.ValueSHA256)},
		{Key: HeaderValueBytes, Value: []byte(strconv.Itoa(p.ValueBytes))},
	}}
}

// minCutBytes is the length from which deadLetterError's last check cuts
// an input value from the text wherever it occurs, as the cross-border
// gate does: shorter ones ("cn", "track") occur by chance in the words of
// an error.
const minCutBytes = 6

// deadLetterError is err's message with every error of its chain that is
// a Redacter said by RedactedError. Then, as a last check, every value of
// 6 bytes or more that the record holds (its key; the strings and numbers
// of a JSON value) is cut from the text wherever it still occurs.
func deadLetterError(err error, rec *kgo.Record) string {
	if err == nil {
		return ""
	}
	text := redacted(err)
	for _, v := range inputValues(rec) {
		text = strings.ReplaceAll(text, v, "…")
	}
	return text
}

// redacted is err's message with each Redacter in its chain replaced by
// its RedactedError: a wrapper's own words stay.
func redacted(err error) string {
	if r, ok := err.(Redacter); ok {
		return r.RedactedError()
	}
	text := err.Error()
	var inner []error
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		inner = []error{u.Unwrap()}
	case interface{ Unwrap() []error }:
		inner = u.Unwrap()
	}
	for _, e := range inner {
		if e != nil && e.Error() != "" {
			text = strings.Replace(text, e.Error(), redacted(e), 1)
		}
	}
	return text
}

// inputValues are the record's key and, if its value is JSON, the strings
// and numbers in it, those of minCutBytes or more, longest first (so a
// value inside another is not cut first).
func inputValues(rec *kgo.Record) []string {
	var out []string
	add := func(s string) {
		if len(s) >= minCutBytes {
			out = append(out, s)
		}
	}
	add(string(rec.Key))
	dec := json.NewDecoder(bytes.NewReader(rec.Value))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) == nil {
		var walk func(any)
		walk = func(v any) {
			switch v := v.(type) {
			case string:
				add(v)
			case json.Number:
				add(v.String())
			case []any:
				for _, e := range v {
					walk(e)
				}
			case map[string]any:
				for _, e := range v {
					walk(e)
				}
			}
		}
		walk(v)
	}
	// Longest first: cutting "abcdef" before "abcdef-123" would leave "-123".
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// Header returns the value of the first header named key, or "".
func Header(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
