package chwriter

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/consentflow/consentflow/internal/testenv"
)

func TestParseServerVersionAndGates(t *testing.T) {
	for _, tc := range []struct {
		in    string
		parts [4]int
		want  features
	}{
		// The Debian package the tests run: every gate closed.
		{"18.16.1", [4]int{18, 16, 1, 0}, features{}},
		// Releases before the year.month numbering are older still.
		{"1.1.54394", [4]int{1, 1, 54394, 0}, features{}},
		{"18.14.19", [4]int{18, 14, 19, 0}, features{}},
		{"19.1.6", [4]int{19, 1, 6, 0}, features{addColumnIfNotExists: true}},
		{"19.4.5.35", [4]int{19, 4, 5, 35}, features{addColumnIfNotExists: true}},
		{"19.5.2.6", [4]int{19, 5, 2, 6}, features{addColumnIfNotExists: true, insertPartitionLimit: true}},
		{"20.1.2.4", [4]int{20, 1, 2, 4}, features{addColumnIfNotExists: true, insertPartitionLimit: true}},
		{"24.8.4.13", [4]int{24, 8, 4, 13}, features{addColumnIfNotExists: true, insertPartitionLimit: true}},
		{" 25.3.2.39\n", [4]int{25, 3, 2, 39}, features{addColumnIfNotExists: true, insertPartitionLimit: true}},
		// Vendor builds tag the version.
		{"22.8.15.25.altinitystable", [4]int{22, 8, 15, 25}, features{addColumnIfNotExists: true, insertPartitionLimit: true}},
		{"23.3.19-lts", [4]int{23, 3, 19, 0}, features{addColumnIfNotExists: true, insertPartitionLimit: true}},
		{"19.5.4.22.1.2", [4]int{19, 5, 4, 22}, features{addColumnIfNotExists: true, insertPartitionLimit: true}},
	} {
		v, err := parseServerVersion(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if v.parts != tc.parts {
			t.Errorf("%q parsed as %v, want %v", tc.in, v.parts, tc.parts)
		}
		if got := featuresOf(v); got != tc.want {
			t.Errorf("%q: features %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "18", "v18.16.1", "eighteen.sixteen", ".16.1", "18.x"} {
		if v, err := parseServerVersion(bad); err == nil {
			t.Errorf("%q parsed as %v, want an error", bad, v.parts)
		}
	}
}

func TestClassify(t *testing.T) {
	ex := func(code int32) error {
		return fmt.Errorf("send insert: %w", &clickhouse.Exception{Code: code, Message: "m"})
	}
	old, current := features{}, features{addColumnIfNotExists: true, insertPartitionLimit: true}
	for _, tc := range []struct {
		name string
		err  error
		n    int
		f    features
		want outcome
		kind string
	}{
		{"connection refused", errors.New("dial tcp 127.0.0.1:9000: connect: connection refused"), 100, old, retryLater, kindConnection},
		{"connection lost, one row", errors.New("read: EOF"), 1, current, retryLater, kindConnection},
		{"table dropped", ex(60), 100, current, retryLater, kindServer},
		{"memory limit", ex(241), 100, current, retryLater, kindServer},
		{"readonly", ex(164), 1, current, retryLater, kindServer},
		{"parse in a DEFAULT, batch", ex(6), 100, old, split, kindRejected},
		{"parse in a DEFAULT, one row", ex(6), 1, old, deadLetter, kindRejected},
		{"throwIf, one row", ex(395), 1, current, deadLetter, kindRejected},
		{"CHECK constraint, batch", ex(469), 2, current, split, kindRejected},
		// 18.16: TOO_MANY_PARTS only means merges lag: wait, never split.
		{"too many parts on 18.16", ex(252), 100, old, retryLater, kindServer},
		// 19.5+: the batch may span too many months: split it...
		{"too many partitions per insert", ex(252), 100, current, split, kindRejected},
		// ...but one row is one month: merges lag, wait.
		{"too many parts, one row", ex(252), 1, current, retryLater, kindServer},
	} {
		what, kind := classify(tc.err, tc.n, tc.f)
		if what != tc.want || kind != tc.kind {
			t.Errorf("%s: outcome %d kind %s, want %d %s", tc.name, what, kind, tc.want, tc.kind)
		}
	}
}

// TestDetectsServer18_16 checks that the test server is found to be 18.16,
// reported in the metric, and takes the old path: the statements the newer
// path would send are refused by this server, which is why they are gated.
func TestDetectsServer18_16(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.w.server.parts; got[0] != 18 || got[1] != 16 {
		t.Fatalf("server version %v (%q), want 18.16", got, f.w.server)
	}
	if f.w.features != (features{}) {
		t.Errorf("features on 18.16: %+v, want none", f.w.features)
	}
	if n := testutil.CollectAndCount(f.w.metrics.serverInfo); n != 1 {
		t.Errorf("sink_clickhouse_server_info has %d series, want 1", n)
	}
	if v := testutil.ToFloat64(f.w.metrics.serverInfo.WithLabelValues(f.w.server.String())); v != 1 {
		t.Errorf("sink_clickhouse_server_info{version=%q} = %v, want 1", f.w.server, v)
	}

	newer := features{addColumnIfNotExists: true}
	stmt := column{"gate_probe", "String", "''"}.addStatement(f.cfg.Database, newer)
	var ex *clickhouse.Exception
	if err := f.conn.Exec(ctx, stmt); !errors.As(err, &ex) || ex.Code != 62 {
		t.Errorf("%s on 18.16: %v, want a syntax error (62): the gate protects this server from it", stmt, err)
	}
	if err := f.conn.Exec(ctx, column{"gate_probe", "String", "''"}.addStatement(f.cfg.Database, features{})); err != nil {
		t.Errorf("the 18.16 path: %v", err)
	}
}

func TestAddColumnStatementFollowsTheGate(t *testing.T) {
	c := column{"country", "String", "''"}
	for _, tc := range []struct {
		f    features
		want string
	}{
		{features{}, "ALTER TABLE db.events ADD COLUMN country String DEFAULT ''"},
		{features{addColumnIfNotExists: true}, "ALTER TABLE db.events ADD COLUMN IF NOT EXISTS country String DEFAULT ''"},
	} {
		if got := c.addStatement("db", tc.f); got != tc.want {
			t.Errorf("features %+v: %q, want %q", tc.f, got, tc.want)
		}
	}
}
