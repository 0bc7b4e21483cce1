package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
	"github.com/consentflow/consentflow/sink/chwriter"
)

// clusterEnvFile is the overlay that points the shipped configs at the
// three-broker cluster of `scripts/deps.sh kafka-cluster up`.
const clusterEnvFile = "../configs/cluster/kafka.env"

// clusterEnv returns the KEY=VALUE lines of clusterEnvFile.
func clusterEnv(t *testing.T) []string { return envFile(t, clusterEnvFile) }

// envFile reads the KEY=VALUE lines of an environment file.
func envFile(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(line, "=") {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKafkaClusterEnvCoversEveryTopic loads each shipped config under the
// cluster overlay and checks that every topic it declares, found by
// reflection (so a topic added later is checked too), asks for replication
// factor 3 and min ISR 2, and that every Kafka client seeds from the three
// brokers. A misspelt variable in the overlay is ignored by the loader,
// and so caught here.
func TestKafkaClusterEnvCoversEveryTopic(t *testing.T) {
	env := clusterEnv(t)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	devMode(t)
	t.Setenv("ENRICHER_PSEUDONYM_KEY_FILE", "../configs/dev-pseudonym.key")
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_KEY_FILE", "../configs/dev-export.key")
	ccfg, ecfg, scfg, xcfg := ingest.Default(), pipeline.Default(), chwriter.Default(), chwriter.Default()
	wantBrokers := []string{"127.0.0.1:19092", "127.0.0.1:19093", "127.0.0.1:19094"}
	for _, c := range []struct {
		file, prefix string
		cfg          config.Validator
		topics       int
	}{
		{"collector.yaml", "COLLECTOR", &ccfg, 6},
		{"enricher.yaml", "ENRICHER", &ecfg, 11},
		{"sink.yaml", "SINK", &scfg, 4},
		{"sink-intl.yaml", "SINK", &xcfg, 4},
	} {
		load(t, "../configs/"+c.file, c.prefix, c.cfg)
		topics, clients := 0, 0
		walkKafka(reflect.ValueOf(c.cfg), "", func(key string, spec *kafkax.TopicSpec, k *kafkax.Config) {
			switch {
			case spec != nil:
				topics++
				if spec.ReplicationFactor != 3 || spec.MinInsyncReplicas != 2 {
					t.Errorf("%s: %s (%s) has replication_factor %d and min_insync_replicas %d under %s, want 3 and 2",
						c.file, key, spec.Name, spec.ReplicationFactor, spec.MinInsyncReplicas, clusterEnvFile)
				}
			case k != nil:
				clients++
				if !reflect.DeepEqual(k.Brokers, wantBrokers) {
					t.Errorf("%s: %s.brokers = %v under %s, want %v", c.file, key, k.Brokers, clusterEnvFile, wantBrokers)
				}
			}
		})
		if topics != c.topics || clients == 0 {
			t.Errorf("%s: found %d topics and %d kafka blocks, want %d topics and a kafka block", c.file, topics, clients, c.topics)
		}
	}
}

// TestClickHouseClusterEnv loads the shipped configs under
// configs/cluster/clickhouse.env: both sinks on the cluster's two replicas
// with the cluster named, and the collector's export reading both.
func TestClickHouseClusterEnv(t *testing.T) {
	const file = "../configs/cluster/clickhouse.env"
	for _, kv := range envFile(t, file) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	devMode(t)
	replicas := []string{"127.0.0.1:19000", "127.0.0.1:19001"}
	for _, name := range []string{"sink.yaml", "sink-intl.yaml"} {
		cfg := chwriter.Default()
		load(t, "../configs/"+name, "SINK", &cfg)
		if cfg.Cluster != "consentflow" || !slices.Equal(cfg.ClickHouse.Addr, replicas) {
			t.Errorf("%s under %s: cluster %q, clickhouse.addr %v; want consentflow on %v", name, file, cfg.Cluster, cfg.ClickHouse.Addr, replicas)
		}
	}
	ccfg := ingest.Default()
	load(t, "../configs/collector.yaml", "COLLECTOR", &ccfg)
	if e := ccfg.Privacy.Export; !slices.Equal(e.ClickHouse.Addr, replicas) || !slices.Equal(e.Abroad.ClickHouse.Addr, replicas) {
		t.Errorf("collector under %s: export reads %v and %v abroad, want %v", file, e.ClickHouse.Addr, e.Abroad.ClickHouse.Addr, replicas)
	}
}

var (
	topicSpecType   = reflect.TypeFor[kafkax.TopicSpec]()
	kafkaConfigType = reflect.TypeFor[kafkax.Config]()
)

// walkKafka calls visit with every kafkax.TopicSpec and kafkax.Config in v
// and its dotted YAML key.
func walkKafka(v reflect.Value, key string, visit func(key string, spec *kafkax.TopicSpec, k *kafkax.Config)) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch {
	case v.Type() == topicSpecType:
		s := v.Interface().(kafkax.TopicSpec)
		visit(key, &s, nil)
	case v.Type() == kafkaConfigType:
		k := v.Interface().(kafkax.Config)
		visit(key, nil, &k)
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if name == "" || name == "-" {
				name = f.Name
			}
			walkKafka(v.Field(i), strings.TrimPrefix(key+"."+name, "."), visit)
		}
	case v.Kind() == reflect.Slice || v.Kind() == reflect.Array:
		for i := range v.Len() {
			walkKafka(v.Index(i), fmt.Sprintf("%s[%d]", key, i), visit)
		}
	case v.Kind() == reflect.Map:
		for _, k := range v.MapKeys() {
			walkKafka(v.MapIndex(k), key+"."+fmt.Sprint(k.Interface()), visit)
		}
	}
}

// kafkaClusterBrokers returns the three-broker cluster's brokers. The
// cluster is not part of `make test`: without it the test is skipped, in
// CI too, unless TEST_KAFKA_CLUSTER_BROKERS names it (make
// test-kafka-cluster does), when an unreachable cluster fails the test
// under CI=true.
func kafkaClusterBrokers(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs the Kafka cluster")
	}
	addrs, required := os.Getenv("TEST_KAFKA_CLUSTER_BROKERS"), true
	if addrs == "" {
		required = false
		for _, kv := range clusterEnv(t) {
			if v, ok := strings.CutPrefix(kv, "COLLECTOR_KAFKA_BROKERS="); ok {
				addrs = v
			}
		}
	}
	brokers := strings.Split(addrs, ",")
	for _, b := range brokers {
		conn, err := net.DialTimeout("tcp", b, 2*time.Second)
		if err != nil {
			msg := "the Kafka cluster is not reachable at " + b + " (scripts/deps.sh kafka-cluster up, or make test-kafka-cluster): " + err.Error()
			if required && os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		conn.Close()
	}
	return brokers
}

// kafkaClusterDir is where scripts/cluster/kafka.sh keeps the nodes' pid
// files: $KAFKA_CLUSTER_DIR, else $DEPS_DIR/kafka-cluster, else the
// repository's .deps/kafka-cluster.
func kafkaClusterDir() string {
	if d := os.Getenv("KAFKA_CLUSTER_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("DEPS_DIR"); d != "" {
		return filepath.Join(d, "kafka-cluster")
	}
	return "../.deps/kafka-cluster"
}

// killNode sends SIGKILL to cluster node id (its pid file's process, once
// its command line shows it is that node) and waits until it is gone.
func killNode(t *testing.T, ctx context.Context, id int32) {
	t.Helper()
	dir := kafkaClusterDir()
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node-%d.pid", id)))
	if err != nil {
		t.Fatalf("pid of kafka cluster node %d: %v", id, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(fmt.Sprintf("node-%d/server.properties", id))) {
		t.Fatalf("pid %d is not kafka cluster node %d (%v)", pid, id, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Not our child: wait for the pid to go rather than for its exit.
	for syscall.Kill(pid, 0) == nil {
		if ctx.Err() != nil {
			t.Fatalf("kafka cluster node %d (pid %d) still runs after SIGKILL", id, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startCluster runs `scripts/deps.sh kafka-cluster up`, which starts only
// the nodes that are down and returns once each answers.
func startCluster(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "../scripts/deps.sh", "kafka-cluster", "up").CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/deps.sh kafka-cluster up: %w\n%s", err, out)
	}
	return nil
}

// TestKafkaClusterBrokerKill runs the collector, the enricher and both
// sinks as processes on the three-broker cluster with the shipped configs
// and the cluster overlay, under steady load; SIGKILLs the leader of a raw
// partition, keeps loading, restarts it, keeps loading; and checks that
// every event the collector acknowledged (200) is in ClickHouse exactly
// once, in the region's database and, for subjects who consented to
// transfer, abroad; that events not acknowledged are there at most once;
// and that every topic the services created has three replicas and
// min.insync.replicas 2.
func TestKafkaClusterBrokerKill(t *testing.T) {
	brokers := kafkaClusterBrokers(t)
	chAddr := testenv.ClickHouseAddr(t)
	ctx := testenv.Context(t, 10*time.Minute)
	bin := t.TempDir()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "../collector", "../enricher", "../sink").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	run := testenv.Name(t, "kc")
	n := func(prefix string) string { return prefix + "." + run }
	raw, clean, export := n("events.raw"), n("events.clean"), n("events.export")
	consent, erasures, requests, receipts, identities := n("privacy.consent"), n("privacy.erasures"), n("privacy.erasure-requests"), n("privacy.receipts"), n("privacy.identities")
	noticesCN, noticesIntl := n("privacy.erasures.cn"), n("privacy.erasures.intl")
	rawDLQ, dlqCN, dlqIntl := n("events.dlq.raw"), n("events.dlq.cn"), n("events.dlq.intl")
	topics := []string{raw, clean, export, consent, erasures, requests, receipts, identities, noticesCN, noticesIntl, rawDLQ, dlqCN, dlqIntl}
	testenv.DeleteTopicsAfter(t, brokers, topics...)
	database, intlDB := "analytics_"+run, "analytics_"+run+"_intl"
	conn, intlConn := testenv.ClickHouseDB(t, chAddr, database), testenv.ClickHouseDB(t, chAddr, intlDB)
	cnUser, intlUser := testenv.ClickHouseSinkUser(t, chAddr, database), testenv.ClickHouseSinkUser(t, chAddr, intlDB)

	base := append(os.Environ(), clusterEnv(t)...)
	env := func(prefix string, kvs ...string) []string {
		out := append([]string(nil), base...)
		for _, kv := range append([]string{"KAFKA_BROKERS=" + strings.Join(brokers, ","), "LOG_FORMAT=text", "DEV_MODE=true"}, kvs...) {
			out = append(out, prefix+"_"+kv)
		}
		return out
	}
	ports := freePorts(t, 5)
	sinkEnv := func(admin, topic, dlq, notices, group, db string, u testenv.ClickHouseUser) []string {
		return env("SINK", "ADMIN_LISTEN="+admin, "TOPICS_CLEAN_NAME="+topic, "TOPICS_DLQ_NAME="+dlq, "TOPICS_ERASURES_NAME="+notices,
			"TOPICS_RECEIPTS_NAME="+receipts, "GROUP_ID="+group, "DATABASE="+db, "CLICKHOUSE_ADDR="+chAddr,
			"CLICKHOUSE_USERNAME="+u.Name, "CLICKHOUSE_PASSWORD="+u.Password, "BATCH_MAX_WAIT=200ms")
	}
	procs := []*process{
		startBinary(t, ctx, bin+"/sink", "../configs/sink.yaml", sinkEnv(ports[0], clean, dlqCN, noticesCN, "sink-"+run, database, cnUser)),
		startBinary(t, ctx, bin+"/sink", "../configs/sink-intl.yaml", sinkEnv(ports[1], export, dlqIntl, noticesIntl, "sink-intl-"+run, intlDB, intlUser)),
		startBinary(t, ctx, bin+"/enricher", "../configs/enricher.yaml", env("ENRICHER", "ADMIN_LISTEN="+ports[2],
			"GROUP_ID=enricher-"+run, "TRANSACTIONAL_ID=enricher-"+run,
			"TOPICS_RAW_NAME="+raw, "TOPICS_CLEAN_NAME="+clean, "TOPICS_DLQ_NAME="+rawDLQ, "TOPICS_CONSENT_NAME="+consent,
			"TOPICS_ERASURES_NAME="+erasures, "TOPICS_ERASURE_REQUESTS_NAME="+requests, "TOPICS_IDENTITIES_NAME="+identities,
			"TOPICS_ERASURE_NOTICES_NAME="+noticesCN, "TOPICS_RECEIPTS_NAME="+receipts,
			"EXPORT_TOPIC_NAME="+export, "EXPORT_ERASURE_NOTICES_NAME="+noticesIntl,
			"PSEUDONYM_KEY_FILE=../configs/dev-pseudonym.key", "EXPORT_PSEUDONYM_KEY_FILE=../configs/dev-export.key")),
		startBinary(t, ctx, bin+"/collector", "../configs/collector.yaml", env("COLLECTOR", "ADMIN_LISTEN="+ports[3], "HTTP_LISTEN="+ports[4],
			"TOPICS_RAW_NAME="+raw, "TOPICS_CONSENT_NAME="+consent, "TOPICS_ERASURES_NAME="+erasures,
			"TOPICS_ERASURE_REQUESTS_NAME="+requests, "TOPICS_RECEIPTS_NAME="+receipts, "TOPICS_IDENTITIES_NAME="+identities)),
	}
	logs := func() string {
		var sb strings.Builder
		for _, p := range procs {
			sb.WriteString(p.log())
		}
		return sb.String()
	}
	readyCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for i, admin := range ports[:4] {
		for !isReady("http://" + admin + "/readyz") {
			select {
			case err := <-procs[i].done: // a port taken meanwhile, for one
				t.Fatalf("%s exited before it was ready: %v\n%s", procs[i].name, err, logs())
			default:
			}
			if readyCtx.Err() != nil {
				t.Fatalf("%s not ready in 3 min\n%s", procs[i].name, logs())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	collector := "http://" + ports[4]

	// Every subject consents to analytics, the even ones to transfer
	// abroad too, so both destinations are under test.
	const subjects = 100
	for i := range subjects {
		c := map[string]any{"anonymousId": fmt.Sprintf("kc-anon-%d", i), "purposes": map[string]bool{"analytics": true},
			"crossBorder": i%2 == 0, "timestamp": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}
		if resp := postAs(t, serverKey, collector+"/v1/consent", c); !resp.Success {
			t.Fatalf("consent: %+v", resp)
		}
	}

	// Steady load: a few senders post batches of 20, each messageId once
	// (no retry), and note which the collector acknowledged.
	load := newLoad(run, subjects)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var senders sync.WaitGroup
	for range 3 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			load.send(loadCtx, collector+"/v1/batch")
		}()
	}
	defer func() { stopLoad(); senders.Wait() }()

	time.Sleep(10 * time.Second)
	adm := kadm.NewClient(newClusterClient(t, brokers))
	td, err := adm.ListTopics(ctx, raw)
	if err != nil || td.Error() != nil {
		t.Fatalf("describe %s: %v %v", raw, err, td.Error())
	}
	leader := td[raw].Partitions[0].Leader
	killed := true
	t.Cleanup(func() { // leave the cluster as it was found
		if killed {
			if err := startCluster(context.Background()); err != nil {
				t.Error(err)
			}
		}
	})
	ackedBefore := load.ackedCount()
	killNode(t, ctx, leader)
	t.Logf("SIGKILLed node %d, leader of %s/0, after %d acknowledged events", leader, raw, ackedBefore)
	time.Sleep(15 * time.Second)
	ackedDown := load.ackedCount() - ackedBefore
	began := time.Now()
	if err := startCluster(ctx); err != nil {
		t.Fatal(err)
	}
	killed = false
	t.Logf("node %d restarted in %v; %d events acknowledged while it was down (and during the restart)", leader, time.Since(began).Round(time.Second), load.ackedCount()-ackedBefore)
	if ackedDown == 0 {
		t.Errorf("no event acknowledged in the 15s node %d was down: with 3 replicas and min ISR 2 one node down must not stop produces", leader)
	}
	time.Sleep(10 * time.Second)
	stopLoad()
	senders.Wait()

	acked, unsure := load.result()
	if load.rejected.Load() > 0 {
		t.Fatalf("%d events rejected in 200 answers: the load is invalid", load.rejected.Load())
	}
	// Abroad: the even subjects' events, under the export key's pseudonyms.
	exportKey, err := os.ReadFile("../configs/dev-export.key")
	if err != nil {
		t.Fatal(err)
	}
	exportPseudo, err := policy.NewPseudonymizer("x1", bytes.TrimRight(exportKey, "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	abroad := func(ids []string) []string {
		var out []string
		for _, id := range ids {
			if load.crossBorder(id) {
				out = append(out, exportPseudo.Pseudonym(policy.KindMessage, id))
			}
		}
		return out
	}
	ackedIntl, unsureIntl := abroad(acked), abroad(unsure)
	t.Logf("%d events acknowledged (%d abroad), %d not (503 or no answer)", len(acked), len(ackedIntl), len(unsure))

	checkDB := func(name string, c driver.Conn, db string, acked, unsure []string) {
		var err error
		for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(2 * time.Second) {
			if err = deliveredOnce(storedIDs(t, ctx, c, db), acked, unsure); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s (%s): %v\n%s", name, db, err, logs())
		}
	}
	checkDB("region", conn, database, acked, unsure)
	checkDB("abroad", intlConn, intlDB, ackedIntl, unsureIntl)
	time.Sleep(2 * time.Second) // a late duplicate insert would land now
	for _, c := range []struct {
		conn          driver.Conn
		db            string
		acked, unsure []string
	}{{conn, database, acked, unsure}, {intlConn, intlDB, ackedIntl, unsureIntl}} {
		if err := deliveredOnce(storedIDs(t, ctx, c.conn, c.db), c.acked, c.unsure); err != nil {
			t.Fatalf("%s: %v", c.db, err)
		}
	}

	// Every topic the services created asks for what the overlay says.
	checkReplicas(t, ctx, adm, topics)

	for _, p := range procs {
		p.stop(t)
	}

	// Negative control on the real table: one acknowledged row stored
	// twice is caught.
	if err := conn.Exec(ctx, "INSERT INTO "+database+".events SELECT * FROM "+database+".events WHERE message_id = '"+acked[0]+"'"); err != nil {
		t.Fatal(err)
	}
	if err := deliveredOnce(storedIDs(t, ctx, conn, database), acked, unsure); err == nil || !strings.Contains(err.Error(), "1 duplicated") {
		t.Fatalf("the check missed a row stored twice: %v", err)
	}
}

func isReady(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// newClusterClient is a plain client of the cluster, closed with the test.
func newClusterClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// checkReplicas checks each topic has three replicas per partition and
// min.insync.replicas 2.
func checkReplicas(t *testing.T, ctx context.Context, adm *kadm.Client, topics []string) {
	t.Helper()
	td, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range topics {
		d, ok := td[name]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			t.Errorf("topic %s: not created (%v)", name, d.Err)
			continue
		}
		for _, p := range d.Partitions {
			if len(p.Replicas) != 3 {
				t.Errorf("topic %s partition %d has %d replicas, want 3", name, p.Partition, len(p.Replicas))
			}
		}
		rc, err := rcs.On(name, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			t.Errorf("topic %s configs: %v", name, err)
			continue
		}
		got := ""
		for _, c := range rc.Configs {
			if c.Key == "min.insync.replicas" {
				got = c.MaybeValue()
			}
		}
		if got != "2" {
			t.Errorf("topic %s has min.insync.replicas %q, want 2", name, got)
		}
	}
}

// storedIDs counts the rows of db.events by message_id.
func storedIDs(t *testing.T, ctx context.Context, conn driver.Conn, db string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	rows, err := conn.Query(ctx, "SELECT message_id, count() FROM "+db+".events GROUP BY message_id")
	if err != nil {
		return seen // no table yet
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var c uint64
		if err := rows.Scan(&id, &c); err != nil {
			t.Fatal(err)
		}
		seen[id] = int(c)
	}
	return seen
}

// deliveredOnce checks stored, rows counted by messageId, against what
// was sent: every acknowledged id exactly once; an id sent without an
// acknowledgement (503, or no answer) at most once, since Kafka may have
// taken it; nothing else.
func deliveredOnce(stored map[string]int, acked, unsure []string) error {
	var missing, duplicated, unexpected int
	sent := make(map[string]bool, len(acked)+len(unsure))
	for _, id := range acked {
		sent[id] = true
		if stored[id] == 0 {
			missing++
		}
	}
	for _, id := range unsure {
		sent[id] = true
	}
	for id, c := range stored {
		switch {
		case !sent[id]:
			unexpected++
		case c > 1:
			duplicated++
		}
	}
	if missing > 0 || duplicated > 0 || unexpected > 0 {
		return fmt.Errorf("%d missing, %d duplicated, %d unexpected of %d acknowledged and %d unacknowledged events",
			missing, duplicated, unexpected, len(acked), len(unsure))
	}
	return nil
}

// TestDeliveredOnceCatchesLossAndDuplicates is the negative control of the
// broker-kill test's check: a lost acknowledged event, a doubled one
// (acknowledged or not) and a stray one each fail it.
func TestDeliveredOnceCatchesLossAndDuplicates(t *testing.T) {
	acked, unsure := []string{"a", "b", "c"}, []string{"d", "e"}
	all := func() map[string]int { return map[string]int{"a": 1, "b": 1, "c": 1, "d": 1} }
	if err := deliveredOnce(all(), acked, unsure); err != nil {
		t.Fatalf("a correct delivery (one unacknowledged event stored, one not): %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(map[string]int)
		want string
	}{
		{"acknowledged event lost", func(m map[string]int) { delete(m, "c") }, "1 missing"},
		{"acknowledged event doubled", func(m map[string]int) { m["a"] = 2 }, "1 duplicated"},
		{"unacknowledged event doubled", func(m map[string]int) { m["d"] = 2 }, "1 duplicated"},
		{"event never sent", func(m map[string]int) { m["z"] = 1 }, "1 unexpected"},
	} {
		m := all()
		tc.edit(m)
		if err := deliveredOnce(m, acked, unsure); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	// Doubled and truncated wholesale.
	doubled := all()
	for id := range doubled {
		doubled[id] = 2
	}
	if err := deliveredOnce(doubled, acked, unsure); err == nil || !strings.Contains(err.Error(), "4 duplicated") {
		t.Errorf("every row twice: got %v", err)
	}
	if err := deliveredOnce(map[string]int{"a": 1}, acked, unsure); err == nil || !strings.Contains(err.Error(), "2 missing") {
		t.Errorf("truncated: got %v", err)
	}
}

// clusterLoad sends track events of `subjects` anonymous subjects, each
// messageId once, and records which the collector acknowledged.
type clusterLoad struct {
	run      string
	subjects int
	next     atomic.Int64
	rejected atomic.Int64
	client   *http.Client

	mu            sync.Mutex
	acked, unsure []string
}

func newLoad(run string, subjects int) *clusterLoad {
	return &clusterLoad{run: run, subjects: subjects, client: &http.Client{Timeout: 20 * time.Second}}
}

func (l *clusterLoad) id(seq int64) string { return fmt.Sprintf("%s-%08d", l.run, seq) }

// crossBorder reports whether id's subject consented to transfer abroad.
func (l *clusterLoad) crossBorder(id string) bool {
	seq, _ := strconv.ParseInt(id[strings.LastIndexByte(id, '-')+1:], 10, 64)
	return seq%int64(l.subjects)%2 == 0
}

func (l *clusterLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (l *clusterLoad) result() (acked, unsure []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acked...), append([]string(nil), l.unsure...)
}

// send posts batches of 20 events every 10ms until ctx ends.
func (l *clusterLoad) send(ctx context.Context, url string) {
	const batchSize = 20
	for ctx.Err() == nil {
		first := l.next.Add(batchSize) - batchSize
		ids := make([]string, batchSize)
		batch := make([]map[string]any, batchSize)
		for i := range batchSize {
			seq := first + int64(i)
			ids[i] = l.id(seq)
			batch[i] = map[string]any{"type": "track", "event": "Product Viewed", "messageId": ids[i],
				"anonymousId": fmt.Sprintf("kc-anon-%d", seq%int64(l.subjects)),
				"timestamp":   time.Now().UTC().Format(time.RFC3339Nano), "properties": map[string]any{"sku": "s-1"}}
		}
		ok := l.post(url, batch)
		l.mu.Lock()
		if ok {
			l.acked = append(l.acked, ids...)
		} else {
			l.unsure = append(l.unsure, ids...)
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// post reports whether the collector acknowledged every event of batch.
// It does not use the test's context: a batch sent is answered, so that
// what Kafka took is never counted as unsent.
func (l *clusterLoad) post(url string, batch []map[string]any) bool {
	b, _ := json.Marshal(map[string]any{"batch": batch})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.SetBasicAuth(clientKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var out batchResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && !errors.Is(err, context.Canceled) {
		return false
	}
	if resp.StatusCode != http.StatusOK {
		return false
	}
	if len(out.Rejected) > 0 {
		l.rejected.Add(int64(len(out.Rejected)))
		return false
	}
	return out.Success
}
