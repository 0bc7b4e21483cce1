package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadTopic returns every record of topic from the start until at least n
// have arrived, failing the test if ctx ends first.
func ReadTopic(t testing.TB, ctx context.Context, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: %d of %d records before %v", topic, len(out), n, ctx.Err())
		}
		out = append(out, fetches.Records()...)
	}
	return out
}

// ReadAll returns every committed record of topic written before the call,
// reading with isolation read_committed. A transactional topic ends in
// commit markers that are never delivered, so a partition counts as read
// once its last offset was seen or it stayed silent for a second.
func ReadAll(t testing.TB, ctx context.Context, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends := listEndOffsets(t, ctx, cl, topic)
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			remaining[o.Partition] = o.Offset
		}
	})
	var out []*kgo.Record
	for quiet := 0; len(remaining) > 0 && quiet < 4; {
		pollCtx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		records := fetches.Records()
		if len(records) == 0 {
			quiet++
			continue
		}
		quiet = 0
		for _, r := range records {
			out = append(out, r)
			if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		}
	}
	return out
}

// Produce writes records synchronously, failing the test on error.
func Produce(t testing.TB, ctx context.Context, brokers []string, records ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// CommittedTotal sums the offsets group has committed on topic.
func CommittedTotal(t testing.TB, ctx context.Context, brokers []string, group, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offsets, err := kadm.NewClient(cl).FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	offsets.Each(func(o kadm.OffsetResponse) {
		if o.At > 0 {
			total += o.At
		}
	})
	return total
}

// DeleteTopicsAfter deletes topics when the test ends, so test runs do not
// pile up topics on the shared broker.
func DeleteTopicsAfter(t testing.TB, brokers []string, topics ...string) {
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Errorf("delete test topics: %v", err)
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := kadm.NewClient(cl).DeleteTopics(ctx, topics...); err != nil {
			t.Errorf("delete test topics %v: %v", topics, err)
		}
	})
}

// EndOffsets returns each partition's end offset.
func EndOffsets(t testing.TB, ctx context.Context, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends := listEndOffsets(t, ctx, cl, topic)
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// listEndOffsets retries while a partition has no leader, as happens for a
// moment after a topic is created on a busy broker.
func listEndOffsets(t testing.TB, ctx context.Context, cl *kgo.Client, topic string) kadm.ListedOffsets {
	t.Helper()
	for {
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			return ends
		}
		if ctx.Err() != nil {
			t.Fatalf("list end offsets of %s: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
