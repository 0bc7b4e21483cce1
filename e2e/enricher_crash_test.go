package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestEnricherExactlyOnceUnderKill kill -9s the enricher process several
// times while it works through a raw topic, restarts it each time, and
// checks with read_committed that the clean topic holds every event exactly
// once, and the export topic every event with cross-border consent.
func TestEnricherExactlyOnceUnderKill(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := testenv.Context(t, 6*time.Minute)
	run := testenv.Name(t, "crash")
	raw, clean, dlq, consent, erasures := "events.raw."+run, "events.clean."+run, "events.dlq.raw."+run, "privacy.consent."+run, "privacy.erasures."+run
	export := "events.export." + run
	testenv.DeleteTopicsAfter(t, brokers, raw, clean, dlq, consent, erasures, export,
		"privacy.identities."+run, "privacy.receipts."+run, "privacy.erasures.cn."+run, "privacy.erasures.intl."+run, "privacy.erasure-requests."+run)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafkax.EnsureTopics(ctx, cl, []kafkax.TopicSpec{{Name: raw}, {Name: clean}, {Name: dlq, Partitions: 1},
		{Name: consent, CleanupPolicy: "compact"}}, nil, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	// Every subject consents to analytics (the enricher fails closed); the
	// even ones to transfer abroad too, so the export topic is under test.
	var grants []*kgo.Record
	for i := range 500 {
		u := event.ConsentUpdate{AnonymousID: fmt.Sprintf("anon-%d", i), Purposes: map[string]bool{"analytics": true},
			CrossBorder: i%2 == 0, Timestamp: "2026-01-01T00:00:00Z"}
		v, _ := json.Marshal(u.State(time.Now(), "web", "cn"))
		grants = append(grants, &kgo.Record{Topic: consent, Key: []byte(u.AnonymousID), Value: v})
	}
	if err := cl.ProduceSync(ctx, grants...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	const n = 20000
	want := make([]string, n)
	var wantExported []string
	records := make([]*kgo.Record, n)
	for i := range n {
		want[i] = fmt.Sprintf("%s-%05d", run, i)
		if i%500%2 == 0 {
			wantExported = append(wantExported, want[i])
		}
		v, _ := json.Marshal(event.Envelope{
			SchemaVersion: event.SchemaVersion, MessageID: want[i], ReceivedAt: time.Now().UTC(), SourceID: "web", Region: "cn",
			Signals: event.Signals{IP: "198.51.100.7"},
			Event:   event.Event{Type: "track", Event: "Viewed", AnonymousID: fmt.Sprintf("anon-%d", i%500)},
		})
		records[i] = &kgo.Record{Topic: raw, Key: []byte(fmt.Sprintf("anon-%d", i%500)), Value: v}
	}
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../enricher").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(),
		"ENRICHER_KAFKA_BROKERS="+strings.Join(brokers, ","),
		"ENRICHER_TOPICS_RAW_NAME="+raw, "ENRICHER_TOPICS_CLEAN_NAME="+clean, "ENRICHER_TOPICS_DLQ_NAME="+dlq,
		"ENRICHER_GROUP_ID="+run, "ENRICHER_TRANSACTIONAL_ID="+run,
		"ENRICHER_TOPICS_CONSENT_NAME="+consent, "ENRICHER_TOPICS_ERASURES_NAME="+erasures,
		"ENRICHER_DEV_MODE=true", "ENRICHER_PSEUDONYM_KEY_FILE=../configs/dev-pseudonym.key",
		"ENRICHER_EXPORT_TOPIC_NAME="+export, "ENRICHER_EXPORT_PSEUDONYM_KEY_FILE=../configs/dev-export.key",
		"ENRICHER_MAX_POLL_RECORDS=200", "ENRICHER_KAFKA_SESSION_TIMEOUT=6s",
		"ENRICHER_TOPICS_IDENTITIES_NAME=privacy.identities."+run, "ENRICHER_TOPICS_RECEIPTS_NAME=privacy.receipts."+run,
		"ENRICHER_TOPICS_ERASURE_NOTICES_NAME=privacy.erasures.cn."+run, "ENRICHER_EXPORT_ERASURE_NOTICES_NAME=privacy.erasures.intl."+run,
		"ENRICHER_TOPICS_ERASURE_REQUESTS_NAME=privacy.erasure-requests."+run,
	)
	start := func() *process {
		return startBinary(t, ctx, bin+"/enricher", "../configs/enricher.yaml",
			append(env, "ENRICHER_ADMIN_LISTEN="+freePorts(t, 1)[0]))
	}
	const kills = 3
	began := time.Now()
	for kill := range kills {
		p := start()
		// Kill while it works: once the clean topic grows, at a random moment.
		before := countRecords(t, ctx, brokers, clean)
		for countRecords(t, ctx, brokers, clean) == before {
			if ctx.Err() != nil {
				t.Fatalf("the enricher made no progress after restart %d\n%s", kill, p.log())
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		if err := p.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown, no flush, no commit
			t.Fatal(err)
		}
		<-p.done
		t.Logf("kill %d after %v: %d records in the clean topic so far, committed or not", kill+1, time.Since(began).Round(time.Second), countRecords(t, ctx, brokers, clean))
	}
	last := start()

	seen := map[string]int{}
	for deadline := time.Now().Add(3 * time.Minute); len(seen) < n; {
		seen = messageIDs(t, ctx, brokers, clean)
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events in the clean topic after the last restart\n%s", len(seen), n, last.log())
		}
		time.Sleep(time.Second)
	}
	last.stop(t)
	if err := exactlyOnce(seen, want); err != nil {
		t.Fatal(err)
	}
	// Exports carry their messageId's pseudonym under the export key.
	exportKey, err := os.ReadFile("../configs/dev-export.key")
	if err != nil {
		t.Fatal(err)
	}
	exportPseudo, err := policy.NewPseudonymizer("x1", bytes.TrimRight(exportKey, "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range wantExported {
		wantExported[i] = exportPseudo.Pseudonym(policy.KindMessage, id)
	}
	if err := exactlyOnce(messageIDs(t, ctx, brokers, export), wantExported); err != nil {
		t.Fatalf("export topic: %v", err)
	}
	t.Logf("%d events exactly once after %d kills; the topic holds %d records and markers, aborted ones included", n, kills, countRecords(t, ctx, brokers, clean))

	// Negative control: the check does catch a duplicate and a loss.
	seen[want[0]]++
	delete(seen, want[1])
	if err := exactlyOnce(seen, want); err == nil || !strings.Contains(err.Error(), "1 duplicated") || !strings.Contains(err.Error(), "1 missing") {
		t.Fatalf("the check missed a planted duplicate and loss: %v", err)
	}
}

// exactlyOnce reports messageIds of want missing from seen or seen more
// than once, and ids seen that were never sent.
func exactlyOnce(seen map[string]int, want []string) error {
	var missing, duplicated int
	for _, id := range want {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			duplicated++
		}
	}
	if extra := len(seen) - (len(want) - missing); missing > 0 || duplicated > 0 || extra > 0 {
		return fmt.Errorf("%d missing, %d duplicated, %d unexpected of %d", missing, duplicated, extra, len(want))
	}
	return nil
}

// messageIDs counts the committed clean records by messageId.
func messageIDs(t *testing.T, ctx context.Context, brokers []string, topic string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, r := range testenv.ReadAll(t, ctx, brokers, topic) {
		c, err := event.DecodeClean(r.Value)
		if err != nil {
			t.Fatalf("clean topic holds an invalid record: %v", err)
		}
		seen[c.MessageID]++
	}
	return seen
}

// countRecords is the topic's end offset total: records of committed and
// aborted transactions and the transaction markers.
func countRecords(t *testing.T, ctx context.Context, brokers []string, topic string) int64 {
	t.Helper()
	var n int64
	for _, r := range testenv.EndOffsets(t, ctx, brokers, topic) {
		n += r
	}
	return n
}
