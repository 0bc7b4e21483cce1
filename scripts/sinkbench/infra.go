package main

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// bench names the tool's topics, consumer groups and databases (see
// benchkit.Prefixes) and its temporary directory.
const bench = "sinkbench"

// binaries are the three commands, built once per run.
type binaries struct{ collector, enricher, sink string }

// infra is what both parts share: the services, this run's names, the
// built binaries, and the records of what to delete at the end.
type infra struct {
	*benchkit.Infra
	o    options
	bins binaries
}

// createTopic creates a delete-policy topic the way the sink's config
// declares events.clean.cn: 3 partitions, one replica, 7 days.
func createTopic(ctx context.Context, adm *kadm.Client, name string) error {
	retention := strconv.FormatInt((168 * time.Hour).Milliseconds(), 10)
	return benchkit.CreateTopic(ctx, adm, name, 3, map[string]*string{"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": &retention})
}

// countRows is count() of db.events; 0 while the table does not exist yet.
func countRows(ctx context.Context, conn driver.Conn, db string) (uint64, error) {
	var n uint64
	err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&n)
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && (ex.Code == 60 || ex.Code == 81) { // no table, no database
		return 0, nil
	}
	return n, err
}

// waitMerges waits, for at most limit, until ClickHouse runs no background
// merge, so one phase's merges do not slow the next; it returns how long
// it waited.
func waitMerges(ctx context.Context, conn driver.Conn, limit time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < limit && ctx.Err() == nil {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&n); err != nil || n == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start)
}
