package kafkax

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

func fetchOf(topic string, partition int32, highWatermark int64, offsets ...int64) kgo.Fetch {
	p := kgo.FetchPartition{Partition: partition, HighWatermark: highWatermark}
	for _, o := range offsets {
		p.Records = append(p.Records, &kgo.Record{Topic: topic, Partition: partition, Offset: o})
	}
	return kgo.Fetch{Topics: []kgo.FetchTopic{{Topic: topic, Partitions: []kgo.FetchPartition{p}}}}
}

func TestLag(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := NewLag(reg, "test")
	lag := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 || mfs[0].GetName() != "test_consumer_lag_records" {
			t.Fatalf("gather: %v %v", mfs, err)
		}
		return mfs[0].GetMetric()[0].GetGauge().GetValue()
	}
	l.Observe(kgo.Fetches{fetchOf("a", 0, 10, 3, 4), fetchOf("a", 1, 7, 6)})
	if got := lag(); got != 5 {
		t.Errorf("lag = %v, want 5 (10-5 on partition 0, 7-7 on 1)", got)
	}
	l.Observe(kgo.Fetches{fetchOf("a", 0, 12, 11), fetchOf("a", 2, 0)}) // an empty fetch changes nothing
	if got := lag(); got != 0 {
		t.Errorf("lag = %v after catching up, want 0", got)
	}
	l.Observe(kgo.Fetches{fetchOf("b", 0, 100, 0)})
	forgetB := map[string][]int32{"b": {0}}
	if len(l.Opts()) != 2 {
		t.Fatal("Opts: want revoke and lost hooks")
	}
	l.forget(context.Background(), nil, forgetB)
	if got := lag(); got != 0 {
		t.Errorf("lag = %v after partition b/0 was revoked, want 0", got)
	}
	if n := testutil.CollectAndCount(reg); n != 1 {
		t.Errorf("%d metrics registered, want 1", n)
	}
}
