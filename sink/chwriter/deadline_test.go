package chwriter

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestBatchDeadline(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	rec := func(ts time.Time) *kgo.Record { return &kgo.Record{Timestamp: ts} }
	for _, c := range []struct {
		name  string
		first []*kgo.Record
		want  time.Time
	}{
		{"fresh records wait max_wait", []*kgo.Record{rec(now)}, now.Add(time.Second)},
		{"records that waited in Kafka wait less", []*kgo.Record{rec(now.Add(-300 * time.Millisecond)), rec(now.Add(-700 * time.Millisecond))}, now.Add(300 * time.Millisecond)},
		{"a producer clock ahead waits no more than max_wait", []*kgo.Record{rec(now.Add(time.Hour))}, now.Add(time.Second)},
		{"a backlog still waits a quarter of max_wait to fill", []*kgo.Record{rec(now.Add(-time.Hour))}, now.Add(250 * time.Millisecond)},
		{"records without a time wait max_wait", []*kgo.Record{rec(time.Time{})}, now.Add(time.Second)},
	} {
		if got := batchDeadline(c.first, time.Second, now); !got.Equal(c.want) {
			t.Errorf("%s: deadline %v, want %v", c.name, got, c.want)
		}
	}
}
