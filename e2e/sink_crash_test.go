package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestSinkExactlyOnceUnderKill kill -9s the sink process several times
// while it inserts a clean topic into ClickHouse, restarts it each time, and
// checks that ClickHouse ends with every event exactly once.
func TestSinkExactlyOnceUnderKill(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	chAddr := testenv.ClickHouseAddr(t)
	ctx := testenv.Context(t, 6*time.Minute)
	run := testenv.Name(t, "sinkcrash")
	clean, dlq, database := "events.clean."+run, "events.dlq.cn."+run, "analytics_"+run
	testenv.DeleteTopicsAfter(t, brokers, clean, dlq, "privacy.erasures.cn."+run, "privacy.receipts."+run)
	conn := testenv.ClickHouseDB(t, chAddr, database)
	// The sink logs in as a user that may use its database only; conn is
	// the default user's.
	chUser := testenv.ClickHouseSinkUser(t, chAddr, database)

	const n = 30000
	want := make([]string, n)
	records := make([]*kgo.Record, n)
	now := time.Now().UTC()
	for i := range n {
		want[i] = fmt.Sprintf("%s-%05d", run, i)
		v, _ := json.Marshal(event.Clean{
			SchemaVersion: event.SchemaVersion, MessageID: want[i], Type: "track", Event: "Viewed",
			Timestamp: now, ReceivedAt: now, SourceID: "web", Region: "cn", Subject: fmt.Sprintf("k1.subject-%d", i%300),
			Properties: json.RawMessage(`{"sku":"s-1"}`),
		})
		records[i] = &kgo.Record{Topic: clean, Key: []byte(fmt.Sprintf("k1.subject-%d", i%300)), Value: v}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../sink").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(),
		"SINK_KAFKA_BROKERS="+strings.Join(brokers, ","), "SINK_KAFKA_SESSION_TIMEOUT=6s",
		"SINK_TOPICS_CLEAN_NAME="+clean, "SINK_TOPICS_DLQ_NAME="+dlq,
		"SINK_GROUP_ID="+run, "SINK_DATABASE="+database, "SINK_CLICKHOUSE_ADDR="+chAddr,
		"SINK_CLICKHOUSE_USERNAME="+chUser.Name, "SINK_CLICKHOUSE_PASSWORD="+chUser.Password,
		"SINK_BATCH_MAX_ROWS=500", "SINK_BATCH_MAX_WAIT=100ms",
		"SINK_TOPICS_ERASURES_NAME=privacy.erasures.cn."+run, "SINK_TOPICS_RECEIPTS_NAME=privacy.receipts."+run,
	)
	start := func() (*process, string) {
		admin := freePorts(t, 1)[0]
		return startBinary(t, ctx, bin+"/sink", "../configs/sink.yaml", append(env, "SINK_ADMIN_LISTEN="+admin)), admin
	}
	rowCount := func() uint64 {
		var c uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+database+".events").Scan(&c); err != nil {
			return 0 // no table yet
		}
		return c
	}

	first, admin := start() // creates the topic and the table
	waitReady(t, ctx, "http://"+admin+"/readyz")
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p := first
	const kills = 3
	for kill := range kills {
		// Kill while it inserts: once rows grow, at a random moment.
		before := rowCount()
		for rowCount() == before {
			if ctx.Err() != nil {
				t.Fatalf("the sink made no progress after restart %d\n%s", kill, p.log())
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-p.done
		t.Logf("kill %d: %d rows in ClickHouse so far", kill+1, rowCount())
		p, _ = start()
	}
	for deadline := time.Now().Add(3 * time.Minute); rowCount() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d rows after the last restart\n%s", rowCount(), n, p.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate insert would land now
	p.stop(t)

	stored := func() map[string]int { return storedIDs(t, ctx, conn, database) }
	if err := exactlyOnce(stored(), want); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events exactly once in ClickHouse after %d kills", n, kills)

	// Negative control: one row stored twice in the table, as a sink that
	// re-inserted after a crash would leave it, is caught.
	if err := conn.Exec(ctx, "INSERT INTO "+database+".events SELECT * FROM "+database+".events WHERE message_id = '"+want[0]+"'"); err != nil {
		t.Fatal(err)
	}
	if err := exactlyOnce(stored(), want); err == nil || !strings.Contains(err.Error(), "1 duplicated") {
		t.Fatalf("the check missed a row stored twice: %v", err)
	}
}
