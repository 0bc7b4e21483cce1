package benchkit

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testReport records what Measure hands it.
type testReport struct {
	written    bool
	cleanedUp  *bool // the cleanup had run when it was written
	cleanupErr error
	verdict    error
}

func (r *testReport) Write(w io.Writer, cleanupErr error) error {
	r.written, r.cleanupErr = true, cleanupErr
	if !*r.cleanedUp {
		return errors.New("written before the cleanup")
	}
	return r.verdict
}

func TestMeasureCleansUpThenWritesTheReport(t *testing.T) {
	errRun, errCleanup, errVerdict := errors.New("run failed"), errors.New("drop failed"), errors.New("goal missed")
	for _, c := range []struct {
		name                  string
		runErr, cleanErr, ver error
		noReport              bool
		want                  []error // in the error, joined
	}{
		{name: "fine"},
		{name: "run error: report still written", runErr: errRun, want: []error{errRun}},
		{name: "cleanup error: in the report and the error", cleanErr: errCleanup, want: []error{errCleanup}},
		{name: "verdict", ver: errVerdict, want: []error{errVerdict}},
		{name: "all", runErr: errRun, cleanErr: errCleanup, ver: errVerdict, want: []error{errRun, errCleanup, errVerdict}},
		{name: "no report", runErr: errRun, cleanErr: errCleanup, noReport: true, want: []error{errRun, errCleanup}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cleanedUp := false
			rep := &testReport{cleanedUp: &cleanedUp, verdict: c.ver}
			var bounded bool
			err := Measure(context.Background(), time.Minute, func(ctx context.Context, cl *Cleanups) (*testReport, error) {
				_, bounded = ctx.Deadline()
				cl.Add(func() error { cleanedUp = true; return c.cleanErr })
				if c.noReport {
					return nil, c.runErr
				}
				return rep, c.runErr
			})
			if !bounded {
				t.Error("the run's context has no deadline")
			}
			if !cleanedUp {
				t.Error("the cleanup did not run")
			}
			if rep.written == c.noReport {
				t.Errorf("report written %v; want %v", rep.written, !c.noReport)
			}
			if !c.noReport && !errors.Is(rep.cleanupErr, c.cleanErr) {
				t.Errorf("the report's cleanup error %v; want %v", rep.cleanupErr, c.cleanErr)
			}
			if len(c.want) == 0 && err != nil {
				t.Errorf("Measure = %v; want nil", err)
			}
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Errorf("Measure = %v; want it to hold %v", err, w)
				}
			}
		})
	}
}

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := WriteFiles(dir, map[string][]byte{"report.txt": []byte("figures\n"), "chart.svg": []byte("<svg/>")}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"report.txt": "figures\n", "chart.svg": "<svg/>"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	if err := WriteFiles(filepath.Join(dir, "report.txt"), map[string][]byte{"x": nil}); err == nil {
		t.Error("WriteFiles into a file: no error")
	}
}

// startedServices reads what the fake services of StartPipeline recorded,
// by service name (sink cn and sink intl by destination, from their
// DATABASE): each one's arguments and environment.
func startedServices(t *testing.T, dir string) map[string][]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.env"))
	out := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		name := strings.SplitN(filepath.Base(f), "-", 2)[0]
		if name == "sink" { // its database ends in its destination
			db := lines[slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "SINK_DATABASE=") })]
			name += " " + db[strings.LastIndex(db, "_")+1:]
		}
		out[name] = lines
	}
	return out
}

func TestStartPipelineNamesEverythingForTheRun(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BENCHKIT_FAKE_DIR", dir)
	var cl Cleanups
	r := &Run{Infra: &Infra{Prefixes: PrefixesOf("testbench"), RunID: "1p2"}, Bins: Binaries{os.Args[0], os.Args[0], os.Args[0]}}
	s := &StoreFlags{BrokerFlags: BrokerFlags{Brokers: []string{"127.0.0.1:1", "127.0.0.1:2"}}, ClickHouse: "127.0.0.1:3", Root: t.TempDir()}
	p, err := StartPipeline(context.Background(), r, s, PipelineSpec{Export: true, CollectorConfig: "/tmp/c.yaml", SinkEnv: []string{"BATCH_MAX_WAIT=250ms"}}, &cl)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range p.Procs {
		names = append(names, svc.Name)
	}
	if strings.Join(names, ",") != "sink,sink,enricher,collector" || p.Sinks[DestRegion] != p.Procs[0] || p.Sinks[DestExport] != p.Procs[1] ||
		p.Enricher != p.Procs[2] || p.Collector != p.Procs[3] {
		t.Errorf("started %v; want both sinks, the enricher, the collector, in that order", names)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := cl.Run(); err != nil { // stops again, after an error: a no-op
		t.Errorf("cleanup: %v", err)
	}
	got := startedServices(t, dir)
	for name, want := range map[string][]string{
		"sink cn": {"configs/sink.yaml", "SINK_TOPICS_CLEAN_NAME=testbench.1p2.clean", "SINK_DATABASE=testbench_1p2_cn",
			"SINK_GROUP_ID=testbench-1p2-sink-cn", "SINK_TOPICS_ERASURES_NAME=testbench.1p2.erasures-cn", "SINK_KAFKA_BROKERS=127.0.0.1:1,127.0.0.1:2",
			"SINK_CLICKHOUSE_ADDR=127.0.0.1:3", "SINK_BATCH_MAX_WAIT=250ms", "SINK_DEV_MODE=true"},
		"sink intl": {"configs/sink-intl.yaml", "SINK_TOPICS_CLEAN_NAME=testbench.1p2.export", "SINK_DATABASE=testbench_1p2_intl",
			"SINK_TOPICS_DLQ_NAME=testbench.1p2.dlq-intl", "SINK_BATCH_MAX_WAIT=250ms"},
		"enricher": {"configs/enricher.yaml", "ENRICHER_TOPICS_RAW_NAME=testbench.1p2.raw", "ENRICHER_GROUP_ID=testbench-1p2-enricher",
			"ENRICHER_TRANSACTIONAL_ID=testbench-1p2-enricher-tx", "ENRICHER_EXPORT_TOPIC_NAME=testbench.1p2.export",
			"ENRICHER_PSEUDONYM_KEY_FILE=" + filepath.Join(s.Root, DevPseudonymKey)},
		"collector": {"/tmp/c.yaml", "COLLECTOR_HTTP_LISTEN=" + p.HTTPAddr, "COLLECTOR_TOPICS_RAW_NAME=testbench.1p2.raw",
			"COLLECTOR_PRIVACY_EXPORT_DATABASE=testbench_1p2_cn", "COLLECTOR_PRIVACY_EXPORT_ABROAD_DATABASE=testbench_1p2_intl"},
	} {
		for _, w := range want {
			if !slices.Contains(got[name], w) {
				t.Errorf("%s was started without %s", name, w)
			}
		}
	}
	if p.Topics.Clean != "testbench.1p2.clean" || p.Databases[DestExport] != "testbench_1p2_intl" || p.Groups["sink intl"] != "testbench-1p2-sink-intl" {
		t.Errorf("names %+v, %v, %v", p.Topics, p.Databases, p.Groups)
	}
	// Everything named is recorded, to be deleted at the end.
	for _, w := range []string{"testbench-1p2-enricher-erasures", "testbench-1p2-sink-cn-audit", "testbench-1p2-sink-intl-erasures"} {
		if !slices.Contains(r.groups, w) {
			t.Errorf("group %s not recorded for deletion: %v", w, r.groups)
		}
	}
	if !slices.Contains(r.topics, "testbench.1p2.receipts") || !slices.Contains(r.databases, "testbench_1p2_cn") {
		t.Errorf("topics %v, databases %v: not recorded for deletion", r.topics, r.databases)
	}
}

func TestStartPipelineTagsAndRegionOnly(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BENCHKIT_FAKE_DIR", dir)
	var cl Cleanups
	r := &Run{Infra: &Infra{Prefixes: PrefixesOf("testbench"), RunID: "1p2"}, Bins: Binaries{os.Args[0], os.Args[0], os.Args[0]}}
	// An overlay (-env-file) comes first, so the run's own names win.
	s := &StoreFlags{BrokerFlags: BrokerFlags{Brokers: []string{"127.0.0.1:1"}}, ClickHouse: "127.0.0.1:3", Root: t.TempDir(),
		Overlay: map[string][]string{"SINK": {"CLICKHOUSE_CLUSTER=replicas", "DATABASE=overlaid"}, "COLLECTOR": {"TOPICS_RAW_REPLICATION_FACTOR=3"}}}
	p, err := StartPipeline(context.Background(), r, s, PipelineSpec{Tag: "f1"}, &cl)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Run()
	if len(p.Procs) != 3 || len(p.Sinks) != 1 || p.Sinks[DestRegion] == nil {
		t.Fatalf("started %d services, sinks %v; want the region's sink, the enricher, the collector", len(p.Procs), p.Sinks)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	got := startedServices(t, dir)
	for name, want := range map[string][]string{
		"sink cn":   {"SINK_TOPICS_CLEAN_NAME=testbench.1p2.f1.clean", "SINK_DATABASE=testbench_1p2_f1_cn", "SINK_GROUP_ID=testbench-1p2-f1-sink-cn", "SINK_CLICKHOUSE_CLUSTER=replicas"},
		"collector": {"configs/collector.yaml", "COLLECTOR_TOPICS_RAW_NAME=testbench.1p2.f1.raw", "COLLECTOR_TOPICS_RAW_REPLICATION_FACTOR=3"},
	} {
		for _, w := range want {
			if !slices.Contains(got[name], w) {
				t.Errorf("%s was started without %s: %v", name, w, got[name])
			}
		}
	}
	if slices.Contains(got["sink cn"], "SINK_DATABASE=overlaid") {
		t.Error("the overlay's SINK_DATABASE won over the run's")
	}
}

func TestReadEnvFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "cluster.env")
	if err := os.WriteFile(good, []byte("# a cluster\n\nCOLLECTOR_KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:19093\nSINK_CLICKHOUSE_CLUSTER=replicas\n  SINK_TOPICS_CLEAN_MIN_INSYNC_REPLICAS=2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadEnvFile(good)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"COLLECTOR": {"KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:19093"}, "SINK": {"CLICKHOUSE_CLUSTER=replicas", "TOPICS_CLEAN_MIN_INSYNC_REPLICAS=2"}}
	if len(got) != len(want) || !slices.Equal(got["COLLECTOR"], want["COLLECTOR"]) || !slices.Equal(got["SINK"], want["SINK"]) {
		t.Errorf("ReadEnvFile = %v, want %v", got, want)
	}
	for _, bad := range []string{"NOPREFIX=1", "SINK_NOVALUE", "A=B_C"} {
		f := filepath.Join(dir, "bad.env")
		if err := os.WriteFile(f, []byte("# ok\nSINK_A=1\n"+bad+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadEnvFile(f); err == nil || !strings.Contains(err.Error(), "bad.env:3") {
			t.Errorf("%q: %v, want an error naming line 3", bad, err)
		}
	}
	if _, err := ReadEnvFile(filepath.Join(dir, "missing.env")); err == nil || !strings.Contains(err.Error(), "-env-file") {
		t.Errorf("a missing file: %v, want an error naming -env-file", err)
	}
}
