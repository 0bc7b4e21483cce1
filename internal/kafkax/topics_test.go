package kafkax

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestEnsureTopics(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, time.Minute)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	del := testenv.Name(t, "del")
	cmp := testenv.Name(t, "cmp")
	t.Cleanup(func() { _, _ = adm.DeleteTopics(ctx, del, cmp) })

	specs := []TopicSpec{
		{Name: del, Partitions: 2, Retention: 6 * time.Hour},
		{Name: cmp, Partitions: 1, CleanupPolicy: "compact"},
	}
	if err := EnsureTopics(ctx, cl, specs, nil, quiet); err != nil {
		t.Fatalf("create: %v", err)
	}
	details, err := adm.ListTopics(ctx, del, cmp)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details[del].Partitions); n != 2 {
		t.Errorf("%s has %d partitions, want 2", del, n)
	}
	wantConfig(t, adm, del, "retention.ms", "21600000")
	wantConfig(t, adm, del, "cleanup.policy", "delete")
	wantConfig(t, adm, cmp, "cleanup.policy", "compact")
	// Data goes within 1.25 retentions however quiet the topic, and
	// tombstones take effect within a day.
	wantConfig(t, adm, del, "segment.ms", "5400000")
	wantConfig(t, adm, cmp, "max.compaction.lag.ms", "86400000")

	// Second run: nothing to do.
	if err := EnsureTopics(ctx, cl, specs, nil, quiet); err != nil {
		t.Fatalf("second run: %v", err)
	}

	// Drift that can be fixed is fixed.
	specs[0].Retention = 2 * time.Hour
	if err := EnsureTopics(ctx, cl, specs, nil, quiet); err != nil {
		t.Fatalf("retention drift: %v", err)
	}
	wantConfig(t, adm, del, "retention.ms", "7200000")
	wantConfig(t, adm, del, "segment.ms", "3600000")

	// A topic the service only reads is its writer's to check: no error,
	// nothing altered.
	if err := EnsureTopics(ctx, cl, nil, []TopicSpec{{Name: del, Partitions: 4, Retention: time.Hour}}, quiet); err != nil {
		t.Fatalf("used topic with another spec: %v", err)
	}
	wantConfig(t, adm, del, "retention.ms", "7200000")

	// A partition mismatch is refused, naming the topic and both counts.
	specs[0].Partitions = 4
	err = EnsureTopics(ctx, cl, specs, nil, quiet)
	if err == nil || !strings.Contains(err.Error(), del) || !strings.Contains(err.Error(), "has 2 partitions, config wants 4") {
		t.Fatalf("partition mismatch: got %v", err)
	}
}

func wantConfig(t *testing.T, adm *kadm.Client, topic, key, want string) {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(testenv.Context(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			if got := c.MaybeValue(); got != want {
				t.Errorf("%s %s = %s, want %s", topic, key, got, want)
			}
			return
		}
	}
	t.Errorf("%s has no config %s", topic, key)
}
