package kafkax

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter record headers. Reason is a short code from a fixed set per
// stage (usable as a metric label); Error is the full message.
const (
	HeaderReason    = "dlq.reason"
	HeaderStage     = "dlq.stage"
	HeaderError     = "dlq.error"
	HeaderTopic     = "dlq.topic"
	HeaderPartition = "dlq.partition"
	HeaderOffset    = "dlq.offset"
)

// DeadLetter wraps a record that a stage cannot process, keeping its key,
// value and headers byte for byte and saying where it came from and why.
func DeadLetter(rec *kgo.Record, topic, stage, reason string, err error) *kgo.Record {
	headers := append([]kgo.RecordHeader(nil), rec.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderStage, Value: []byte(stage)},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(err.Error())},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(rec.Partition)))},
		kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
	)
	return &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Headers: headers}
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
