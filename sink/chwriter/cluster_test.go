package chwriter

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/testenv"
)

// The cluster tests run against the replicated setup of
// scripts/cluster/clickhouse.sh (ZooKeeper and two ClickHouse replicas of
// the cluster consentflow), which `make test-clickhouse-cluster` starts. They stop
// and start its processes, so they run only when TEST_CLICKHOUSE_CLUSTER=1
// says the setup is theirs; then a setup that does not answer fails them.

// clusterReplicas are the replicas' native addresses, r1 then r2.
var clusterReplicas = []string{"127.0.0.1:19000", "127.0.0.1:19001"}

const clusterName = "consentflow"

// clusterFixture is a sink on the cluster, inserting into r1 first.
type clusterFixture struct {
	*fixture
	replicas []driver.Conn // admin connections, r1 then r2
}

func requireCluster(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test that needs the ClickHouse cluster")
	}
	if os.Getenv("TEST_CLICKHOUSE_CLUSTER") != "1" {
		t.Skip("the ClickHouse cluster tests run with TEST_CLICKHOUSE_CLUSTER=1 (make test-clickhouse-cluster)")
	}
	if err := clusterScript("running"); err != nil {
		t.Fatalf("the ClickHouse cluster does not answer (scripts/deps.sh clickhouse-cluster up): %v", err)
	}
}

// clusterScript runs scripts/cluster/clickhouse.sh with args.
func clusterScript(args ...string) error {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "cluster", "clickhouse.sh")
	out, err := exec.Command(script, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("clickhouse.sh %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func mustScript(t *testing.T, args ...string) {
	t.Helper()
	if err := clusterScript(args...); err != nil {
		t.Fatal(err)
	}
}

// newClusterFixture is newFixture on the cluster. The sink logs in as the
// default user: the cluster's servers have no users.d of the tests'.
func newClusterFixture(t *testing.T, addrs []string) *clusterFixture {
	t.Helper()
	requireCluster(t)
	brokers := testenv.KafkaBrokers(t)
	cfg := Default()
	cfg.Kafka.Brokers = brokers
	cfg.ClickHouse.Addr = addrs
	cfg.ClickHouse.DialTimeout = time.Second
	cfg.Cluster = clusterName
	cfg.GroupID = testenv.Name(t, "sink")
	cfg.Database = testenv.Name(t, "analytics")
	cfg.Topics.Clean.Name = testenv.Name(t, "clean")
	cfg.Topics.DLQ.Name = testenv.Name(t, "dlq")
	cfg.Topics.Erasures.Name = testenv.Name(t, "erasures")
	cfg.Topics.Receipts.Name = testenv.Name(t, "receipts")
	cfg.Batch.MaxRows = 500
	cfg.Batch.MaxWait = 100 * time.Millisecond
	cfg.Erasure.Window = 300 * time.Millisecond
	cfg.Erasure.Timeout = 5 * time.Second // a replica whose queue a test stopped holds a mutation
	cfg.Retention.Months = 0
	testenv.DeleteTopicsAfter(t, brokers, cfg.Topics.Clean.Name, cfg.Topics.DLQ.Name, cfg.Topics.Erasures.Name, cfg.Topics.Receipts.Name)
	f := &clusterFixture{fixture: &fixture{cfg: cfg, brokers: brokers}}
	for _, a := range clusterReplicas {
		conn, err := chx.Open(&chx.Config{Addr: []string{a}})
		if err != nil {
			t.Fatal(err)
		}
		f.replicas = append(f.replicas, conn)
	}
	f.conn = f.replicas[0]
	t.Cleanup(func() {
		// A replica's DROP removes its metadata in ZooKeeper too. Put back
		// whatever a test stopped, so that the next one finds it running.
		ctx := context.Background()
		for i, c := range f.replicas {
			_ = c.Exec(ctx, "SYSTEM START FETCHES")
			_ = c.Exec(ctx, "SYSTEM START REPLICATION QUEUES")
			// A replicated table is read-only, and cannot be dropped, until
			// its replica has its ZooKeeper session back after a fault.
			for try := 0; ; try++ {
				err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.Database)
				if err == nil {
					break
				}
				if try == 60 {
					t.Errorf("drop %s on r%d: %v", cfg.Database, i+1, err)
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			_ = c.Close()
		}
	})
	f.w = f.newSink(t, cfg)
	return f
}

// newSink is a sink of cfg, shut down when the test ends.
func (f *clusterFixture) newSink(t *testing.T, cfg Config) *Writer {
	t.Helper()
	w, err := New(cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	return w
}

// rowsOn counts each message id's rows on one replica.
func (f *clusterFixture) rowsOn(t *testing.T, ctx context.Context, replica int) map[string]uint64 {
	t.Helper()
	got, err := rowsByMessageID(ctx, f.replicas[replica], f.cfg.Database)
	if err != nil {
		t.Fatalf("replica r%d: %v", replica+1, err)
	}
	return got
}

// syncReplicas waits until every replica has fetched every part the
// others have (SYSTEM SYNC REPLICA).
func (f *clusterFixture) syncReplicas(t *testing.T, ctx context.Context) {
	t.Helper()
	for i, c := range f.replicas {
		if err := c.Exec(ctx, "SYSTEM SYNC REPLICA "+f.cfg.Database+".events"); err != nil {
			t.Fatalf("sync replica r%d: %v", i+1, err)
		}
	}
}

// exactlyOnce lists how got differs from every id of want stored once.
func exactlyOnce(got map[string]uint64, want []string) []string {
	var problems []string
	for _, id := range want {
		if n := got[id]; n != 1 {
			problems = append(problems, fmt.Sprintf("%s stored %d times", id, n))
		}
	}
	if len(got) != len(want) {
		problems = append(problems, fmt.Sprintf("%d distinct ids stored, want %d", len(got), len(want)))
	}
	return problems
}

// checkEveryReplica fails the test unless every replica holds each of ids
// exactly once.
func (f *clusterFixture) checkEveryReplica(t *testing.T, ctx context.Context, ids []string) {
	t.Helper()
	f.syncReplicas(t, ctx)
	for i := range f.replicas {
		problems := exactlyOnce(f.rowsOn(t, ctx, i), ids)
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
		}
		if len(problems) > 0 {
			t.Errorf("replica r%d: %s", i+1, strings.Join(problems, "; "))
		}
	}
}

// negativeControl runs after a test's check passed: it doubles ids[0] and
// deletes ids[1] in the real table, and the same check must now report
// both on every replica.
func (f *clusterFixture) negativeControl(t *testing.T, ctx context.Context, ids []string) {
	t.Helper()
	if t.Failed() {
		return // the check has already caught something
	}
	db := f.cfg.Database
	if err := f.replicas[0].Exec(ctx, "INSERT INTO "+db+".events SELECT * FROM "+db+".events WHERE message_id = ?", ids[0]); err != nil {
		t.Fatalf("negative control: double %s: %v", ids[0], err)
	}
	if err := f.replicas[0].Exec(ctx, "ALTER TABLE "+db+".events DELETE WHERE message_id = ?", ids[1]); err != nil {
		t.Fatalf("negative control: delete %s: %v", ids[1], err)
	}
	f.syncReplicas(t, ctx)
	want := []string{ids[0] + " stored 2 times", ids[1] + " stored 0 times",
		fmt.Sprintf("%d distinct ids stored, want %d", len(ids)-1, len(ids))}
	for i := range f.replicas {
		for { // the mutation runs on each replica in its own time
			problems := exactlyOnce(f.rowsOn(t, ctx, i), ids)
			if slices.Equal(problems, want) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("negative control on r%d: the check reports %q, want %q", i+1, problems, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestExactlyOnceCatchesLossAndDuplicate is the negative control of every
// cluster test's check: a doubled row and a missing one are both caught.
func TestExactlyOnceCatchesLossAndDuplicate(t *testing.T) {
	want := []string{"a", "b", "c"}
	if p := exactlyOnce(map[string]uint64{"a": 1, "b": 1, "c": 1}, want); len(p) != 0 {
		t.Errorf("all once: %v", p)
	}
	if p := exactlyOnce(map[string]uint64{"a": 1, "b": 2, "c": 1}, want); len(p) != 1 || !strings.Contains(p[0], "b stored 2") {
		t.Errorf("a duplicate not caught: %v", p)
	}
	if p := exactlyOnce(map[string]uint64{"a": 1, "c": 1}, want); len(p) != 2 || !strings.Contains(p[0], "b stored 0") {
		t.Errorf("a loss not caught: %v", p)
	}
}

// records are n clean events id-<i>, over 28 days of November 2026 and 97
// subjects, each value about 300 bytes.
func (f *clusterFixture) records(prefix string, n int) ([]*kgo.Record, []string) {
	recs, ids := make([]*kgo.Record, n), make([]string, n)
	pad := strings.Repeat("x", 200)
	for i := range recs {
		subject := fmt.Sprintf("k1.subject-%d", i%97)
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
		v, _ := json.Marshal(event.Clean{
			SchemaVersion: event.SchemaVersion, MessageID: ids[i], Type: "track", Event: "Viewed",
			Timestamp: time.Date(2026, 11, 1+i%28, 8, 0, 0, 0, time.UTC), ReceivedAt: time.Now().UTC(),
			SourceID: "web", Region: "cn", Subject: subject, UserID: subject,
			Properties: json.RawMessage(`{"note":"` + pad + `"}`),
		})
		recs[i] = &kgo.Record{Topic: f.cfg.Topics.Clean.Name, Key: []byte(subject), Value: v}
	}
	return recs, ids
}

// trickle produces recs in slices of 100 with a pause between, so that
// inserts are in flight when a fault strikes. It returns when all are
// acknowledged.
func trickle(ctx context.Context, brokers []string, recs []*kgo.Record, pause time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		p, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			done <- err
			return
		}
		defer p.Close()
		for i := 0; i < len(recs); i += 100 {
			if err := p.ProduceSync(ctx, recs[i:min(i+100, len(recs))]...).FirstErr(); err != nil {
				done <- err
				return
			}
			time.Sleep(pause)
		}
		done <- nil
	}()
	return done
}

// waitStored waits until replica holds at least n distinct ids.
func (f *clusterFixture) waitStored(t *testing.T, ctx context.Context, replica, n int) {
	t.Helper()
	for len(f.rowsOn(t, ctx, replica)) < n {
		if ctx.Err() != nil {
			t.Fatalf("replica r%d holds %d of %d ids", replica+1, len(f.rowsOn(t, context.Background(), replica)), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterOfSeveralShardsRefused: the sink issues each mutation once,
// which reaches one shard's replicas only, so it refuses a cluster of two
// shards at start, naming the key.
func TestClusterOfSeveralShardsRefused(t *testing.T) {
	f := newClusterFixture(t, clusterReplicas)
	ctx := testenv.Context(t, time.Minute)
	for cluster, want := range map[string]string{clusterName + "_two_shards": "has 2 shards", "no_such_cluster": "has no cluster"} {
		cfg := f.cfg
		cfg.Cluster = cluster
		err := f.newSink(t, cfg).Start(ctx)
		if err == nil || !strings.Contains(err.Error(), "cluster: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("cluster %s: Start = %v, want an error naming the key cluster that %s", cluster, err, want)
		}
	}
}

// TestClusterSchema: on a cluster the sink makes replicated tables on
// every replica and a Distributed one over them; a row inserted on one
// replica is on both, and read through events_all.
func TestClusterSchema(t *testing.T) {
	f := newClusterFixture(t, clusterReplicas)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i, c := range f.replicas {
		rows, err := c.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ? AND name != 'schema_migrations' ORDER BY name", f.cfg.Database)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var name, eng string
			_ = rows.Scan(&name, &eng)
			got = append(got, name+":"+eng)
		}
		rows.Close()
		want := []string{"events:ReplicatedMergeTree", "events_all:Distributed", "privacy_audit:ReplicatedReplacingMergeTree"}
		if !slices.Equal(got, want) {
			t.Errorf("replica r%d tables %v, want %v", i+1, got, want)
		}
		var create string
		if err := c.QueryRow(ctx, "SHOW CREATE TABLE "+f.cfg.Database+".events").Scan(&create); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(create, "replicated_deduplication_window = 1000") {
			t.Errorf("replica r%d: events keeps the default de-duplication window: %s", i+1, create)
		}
	}
	recs, ids := f.records("s", 10)
	testenv.Produce(t, ctx, f.brokers, recs...)
	f.waitStored(t, ctx, 0, len(ids))
	f.checkEveryReplica(t, ctx, ids)
	var n uint64
	if err := f.replicas[1].QueryRow(ctx, "SELECT count() FROM "+f.cfg.Database+"."+distributedTable).Scan(&n); err != nil || n != 10 {
		t.Errorf("events_all holds %d rows (%v), want 10", n, err)
	}
	// Migrating again (another instance, or a restart) finds it all done.
	if v, err := migrateCluster(ctx, f.w.replicas, f.cfg.Database, clusterName, f.w.features); err != nil || v != migrations[len(migrations)-1].version {
		t.Fatalf("second migration: version %d, %v", v, err)
	}
}

// TestClusterResumeReadsEveryReplica: the sink resumes after the highest
// offset stored on ANY replica. Replica r2 stops fetching; a sink loads
// into r1; then a sink that connects to the lagging r2 first, with no
// committed offsets (a crash between insert and commit, at its worst),
// must not load those events again.
func TestClusterResumeReadsEveryReplica(t *testing.T) {
	start := time.Now()
	f := newClusterFixture(t, clusterReplicas)
	ctx := testenv.Context(t, 2*time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.replicas[1].Exec(ctx, "SYSTEM STOP FETCHES "+f.cfg.Database+".events"); err != nil {
		t.Fatal(err)
	}
	recs, ids := f.records("r", 3000)
	// A trickle: the first sink's blocks are small, the second's (a
	// backlog) large, so the replicated table's block de-duplication
	// cannot hide a wrong resume by dropping identical blocks.
	if err := <-trickle(ctx, f.brokers, recs[:2000], 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	f.waitStored(t, ctx, 0, 2000)
	if n := len(f.rowsOn(t, ctx, 1)); n != 0 {
		t.Fatalf("r2 fetched %d ids with fetches stopped: the test proves nothing", n)
	}
	if err := f.w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	cfg := f.cfg
	cfg.GroupID = testenv.Name(t, "sink2") // no committed offsets
	cfg.ClickHouse.Addr = []string{clusterReplicas[1], clusterReplicas[0]}
	g := f.newSink(t, cfg)
	// The client joins its group from New on: let it take its partitions
	// (and ask where to resume) before Start has found the replicas.
	waitAssigned(t, ctx, f.brokers, cfg.GroupID)
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Produce(t, ctx, f.brokers, recs[2000:]...)
	// The new events go into r2, which still fetches nothing.
	f.waitStored(t, ctx, 1, 1000)
	f.fixture.cfg.GroupID = cfg.GroupID
	waitCommitted(t, ctx, f.fixture, int64(len(recs)))
	if err := f.replicas[1].Exec(ctx, "SYSTEM START FETCHES "+f.cfg.Database+".events"); err != nil {
		t.Fatal(err)
	}
	f.checkEveryReplica(t, ctx, ids)
	f.negativeControl(t, ctx, ids)
	t.Logf("took %v", time.Since(start).Round(100*time.Millisecond))
}

// waitAssigned waits until group is stable with its partitions assigned.
func waitAssigned(t *testing.T, ctx context.Context, brokers []string, group string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		described, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			if g, ok := described[group]; ok && g.State == "Stable" && len(g.Members) > 0 {
				if a, ok := g.Members[0].Assigned.AsConsumer(); ok && len(a.Topics) > 0 {
					return
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("group %s never got its partitions: %v", group, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterReplicaKilled kills (SIGKILL) the replica the sink inserts
// into while events arrive, and starts it again: every event is stored
// exactly once, on both replicas.
func TestClusterReplicaKilled(t *testing.T) {
	start := time.Now()
	f := newClusterFixture(t, clusterReplicas)
	ctx := testenv.Context(t, 3*time.Minute)
	t.Cleanup(func() { _ = clusterScript("start", "r1") })
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	recs, ids := f.records("k", 20000)
	produced := trickle(ctx, f.brokers, recs, 40*time.Millisecond)
	f.waitStored(t, ctx, 0, 3000)
	mustScript(t, "kill", "r1")
	killedAt := time.Now()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	// The sink moves on to r2; what r1 took and r2 had not fetched is only
	// on r1 until it is back.
	waitCommitted(t, ctx, f.fixture, int64(len(recs)))
	down := time.Since(killedAt)
	mustScript(t, "start", "r1")
	f.checkEveryReplica(t, ctx, ids)
	f.negativeControl(t, ctx, ids)
	t.Logf("r1 down %v while the sink loaded into r2; took %v", down.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
}

// TestClusterZooKeeperOutage stops ZooKeeper while events arrive: the
// replicated table refuses inserts, the sink holds and retries and Ready
// (/readyz) fails; once ZooKeeper is back every event is stored exactly
// once on both replicas and Ready recovers.
func TestClusterZooKeeperOutage(t *testing.T) {
	start := time.Now()
	f := newClusterFixture(t, clusterReplicas)
	ctx := testenv.Context(t, 3*time.Minute)
	t.Cleanup(func() { _ = clusterScript("start-zookeeper") })
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	recs, ids := f.records("z", 10000)
	produced := trickle(ctx, f.brokers, recs, 20*time.Millisecond)
	f.waitStored(t, ctx, 0, 2000)
	mustScript(t, "stop-zookeeper")
	stoppedAt := time.Now()
	// Down past the replicas' ZooKeeper session timeout (10 s), so that
	// their sessions expire and the tables turn read-only, not only while
	// the client reconnects.
	backAt := stoppedAt.Add(15 * time.Second)
	for f.w.Ready(ctx) == nil {
		if ctx.Err() != nil {
			t.Fatal("Ready kept succeeding with ZooKeeper down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Inserts are refused while it is down: the stored count stands still.
	held := len(f.rowsOn(t, ctx, 0))
	time.Sleep(3 * time.Second)
	if now := len(f.rowsOn(t, ctx, 0)); now != held {
		t.Errorf("r1 went from %d to %d ids with ZooKeeper down", held, now)
	}
	if err := f.w.Ready(ctx); err == nil {
		t.Error("Ready succeeded with ZooKeeper down")
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(backAt))
	if err := f.w.Ready(ctx); err == nil {
		t.Error("Ready succeeded with ZooKeeper down")
	}
	mustScript(t, "start-zookeeper")
	down := time.Since(stoppedAt)
	waitCommitted(t, ctx, f.fixture, int64(len(recs)))
	f.checkEveryReplica(t, ctx, ids)
	f.negativeControl(t, ctx, ids)
	for f.w.Ready(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatalf("Ready did not recover: %v", f.w.Ready(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("ZooKeeper down %v with %d of %d ids stored; took %v", down.Round(100*time.Millisecond), held, len(ids), time.Since(start).Round(100*time.Millisecond))
}

// TestClusterErasureVerifiedOnEveryReplica: r2 stops executing its
// replication queue (where a replicated mutation runs), so the deletion is
// done on r1 only; the receipt must not say deleted until r2 has done it
// too, and then neither replica holds the subject's rows.
func TestClusterErasureVerifiedOnEveryReplica(t *testing.T) {
	start := time.Now()
	f := newClusterFixture(t, clusterReplicas)
	ctx := testenv.Context(t, 2*time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Produce(t, ctx, f.brokers,
		f.cleanOf("a-1", "k1.user-a", "k1.anon-a"), f.cleanOf("a-2", "k1.user-a", ""),
		f.cleanOf("b-1", "k1.user-b", "k1.anon-b"))
	f.waitStored(t, ctx, 0, 3)
	f.syncReplicas(t, ctx)
	if err := f.replicas[1].Exec(ctx, "SYSTEM STOP REPLICATION QUEUES "+f.cfg.Database+".events"); err != nil {
		t.Fatal(err)
	}
	testenv.Produce(t, ctx, f.brokers, f.notice("req-a", []string{"k1.user-a"}, nil))
	erased := "user_pseudonym = 'k1.user-a'"
	for f.countOn(t, ctx, 0, erased) != 0 {
		if ctx.Err() != nil {
			t.Fatal("the deletion did not reach r1")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Done on r1, not on r2: no receipt yet. (A receipt written now
	// would be in the topic by the time this reads it: the eraser writes
	// it at once after its check.)
	time.Sleep(2 * time.Second)
	if n := f.countOn(t, ctx, 1, erased); n != 2 {
		t.Fatalf("r2 holds %d of the subject's rows with its queue stopped, want 2: the test proves nothing", n)
	}
	for _, r := range testenv.ReadAll(t, ctx, f.brokers, f.cfg.Topics.Receipts.Name) {
		if rc, err := event.DecodeReceipt(r.Value); err == nil && rc.Stage == event.StageSink && rc.Status == event.StatusDeleted {
			t.Fatalf("receipt %+v says deleted while r2 still holds the rows", rc)
		}
	}
	if err := f.replicas[1].Exec(ctx, "SYSTEM START REPLICATION QUEUES "+f.cfg.Database+".events"); err != nil {
		t.Fatal(err)
	}
	// Failed receipts may come first (the deletion was retried meanwhile).
	var got event.Receipt
	for got.Status != event.StatusDeleted {
		if ctx.Err() != nil {
			t.Fatalf("no deleted receipt; last %+v", got)
		}
		time.Sleep(100 * time.Millisecond)
		got = f.receipts(t, ctx, "req-a")["req-a"]
	}
	if got.Rows != 2 {
		t.Errorf("receipt %+v, want 2 rows", got)
	}
	for i := range f.replicas {
		if n := f.countOn(t, ctx, i, erased); n != 0 {
			t.Errorf("r%d holds %d rows of the erased subject after its receipt", i+1, n)
		}
		if n := f.countOn(t, ctx, i, "user_pseudonym = 'k1.user-b'"); n != 1 {
			t.Errorf("r%d holds %d rows of the other subject, want 1", i+1, n)
		}
	}
	t.Logf("took %v", time.Since(start).Round(100*time.Millisecond))
}

func (f *clusterFixture) countOn(t *testing.T, ctx context.Context, replica int, where string) uint64 {
	t.Helper()
	var n uint64
	if err := f.replicas[replica].QueryRow(ctx, "SELECT count() FROM "+f.cfg.Database+".events WHERE "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClusterRetentionDropsEverywhere: an expired month goes from every
// replica.
func TestClusterRetentionDropsEverywhere(t *testing.T) {
	f := newClusterFixture(t, clusterReplicas)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	recs, ids := f.records("t", 40) // November 2026
	testenv.Produce(t, ctx, f.brokers, recs...)
	f.waitStored(t, ctx, 0, len(ids))
	f.syncReplicas(t, ctx)
	f.w.cfg.Retention.Months = 1
	n, err := f.w.dropExpired(ctx, time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC))
	if err != nil || n != 1 {
		t.Fatalf("dropExpired = %d, %v; want 1 month", n, err)
	}
	for i := range f.replicas {
		if got := f.rowsOn(t, ctx, i); len(got) != 0 {
			t.Errorf("r%d still holds %d ids of the dropped month", i+1, len(got))
		}
	}
}

// TestClusterUnsureInsertResentIdentical is what an insert whose answer
// was lost relies on: the block went into r1 (whose answer never came), r2
// has not fetched it, and the sink, now on r2, sends the identical block
// again; ZooKeeper's block de-duplication drops it, and each row is
// stored once on both replicas. The control sends the same rows less one,
// as a look-up of r2 and a resend of "the missing ones" would when r2
// held a few: those are stored twice. Hence the identical resend.
func TestClusterUnsureInsertResentIdentical(t *testing.T) {
	f := newClusterFixture(t, clusterReplicas[:1])
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.replicas[1].Exec(ctx, "SYSTEM STOP FETCHES "+f.cfg.Database+".events"); err != nil {
		t.Fatal(err)
	}
	cfg := f.cfg
	cfg.ClickHouse.Addr = clusterReplicas[1:]
	cfg.GroupID = testenv.Name(t, "sink2")
	g := f.newSink(t, cfg)
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rowsOf := func(recs []*kgo.Record) []*row {
		out := make([]*row, len(recs))
		for i, r := range recs {
			r.Partition, r.Offset = 0, int64(i)
			decoded, err := decodeRow(r)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = &decoded
		}
		return out
	}
	recs, ids := f.records("u", 200)
	if err := f.w.insert(ctx, rowsOf(recs)); err != nil { // into r1
		t.Fatal(err)
	}
	// Into r2, identical, with de-duplication off as a server profile
	// could have it: the sink turns it on for its inserts.
	off := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplicate": 0}))
	if err := g.insert(off, rowsOf(recs)); err != nil {
		t.Fatal(err)
	}
	if n := len(f.rowsOn(t, ctx, 1)); n != 0 {
		t.Fatalf("r2 holds %d ids before it fetched: the resent block was not dropped", n)
	}
	if err := f.replicas[1].Exec(ctx, "SYSTEM START FETCHES "+f.cfg.Database+".events"); err != nil {
		t.Fatal(err)
	}
	f.checkEveryReplica(t, ctx, ids)

	// Control: a block that differs (one row fewer) is not dropped.
	if err := g.insert(ctx, rowsOf(recs[:len(recs)-1])); err != nil {
		t.Fatal(err)
	}
	f.syncReplicas(t, ctx)
	if p := exactlyOnce(f.rowsOn(t, ctx, 0), ids); len(p) != len(recs)-1 {
		t.Errorf("a different block: %d problems, want every one of the %d rows but the last doubled", len(p), len(recs)-1)
	}
}

// TestClusterAsTheSinkUser runs the sink as the shipped sink user
// (deployments/clickhouse/users.d/sink.xml, confined to its database), on
// both replicas: it reads system.clusters, makes the replicated tables,
// loads, erases and drops a month.
func TestClusterAsTheSinkUser(t *testing.T) {
	f := newClusterFixture(t, clusterReplicas)
	ctx := testenv.Context(t, time.Minute)
	_, file, _, _ := runtime.Caller(0)
	deps := os.Getenv("DEPS_DIR")
	if deps == "" {
		deps = filepath.Join(filepath.Dir(file), "..", "..", ".deps")
	}
	base, err := os.ReadFile(filepath.Join(deps, "chcluster.dir"))
	if err != nil {
		t.Fatalf("the cluster's folder (scripts/cluster/clickhouse.sh, DEPS_DIR): %v", err)
	}
	dirs := map[string]string{}
	for i, a := range clusterReplicas {
		dirs[a] = filepath.Join(strings.TrimSpace(string(base)), fmt.Sprintf("r%d", i+1), "users.d")
	}
	cfg := f.cfg
	testenv.ClickHouseSinkUserOnEach(t, dirs, cfg.Database).Apply(&cfg.ClickHouse)
	cfg.GroupID = testenv.Name(t, "sinkuser") // the fixture's sink, not started, is in its group
	w := f.newSink(t, cfg)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	recs, ids := f.records("p", 20)
	testenv.Produce(t, ctx, f.brokers, recs...)
	f.waitStored(t, ctx, 0, len(ids))
	f.checkEveryReplica(t, ctx, ids)
	testenv.Produce(t, ctx, f.brokers, f.notice("req-p", []string{"k1.subject-3"}, nil))
	var got event.Receipt
	for got.Status != event.StatusDeleted {
		if ctx.Err() != nil {
			t.Fatalf("no deleted receipt; last %+v", got)
		}
		time.Sleep(100 * time.Millisecond)
		got = f.receipts(t, ctx, "req-p")["req-p"]
	}
	for i := range f.replicas {
		if n := f.countOn(t, ctx, i, "user_pseudonym = 'k1.subject-3'"); n != 0 {
			t.Errorf("r%d holds %d rows of the erased subject", i+1, n)
		}
	}
	w.cfg.Retention.Months = 1
	if n, err := w.dropExpired(ctx, time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)); err != nil || n != 1 {
		t.Errorf("dropExpired = %d, %v; want 1 month", n, err)
	}
}
