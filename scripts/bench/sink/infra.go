package sink

import (
	"context"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// infra is what both parts share: the run (services, names, binaries,
// what to delete at the end) and the flags.
type infra struct {
	*benchkit.Run
	o options
}

// createTopic creates a delete-policy topic the way the sink's config
// declares events.clean.cn: 3 partitions, one replica, 7 days.
func createTopic(ctx context.Context, adm *kadm.Client, name string) error {
	retention := strconv.FormatInt((168 * time.Hour).Milliseconds(), 10)
	return benchkit.CreateTopic(ctx, adm, name, 3, map[string]*string{"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": &retention})
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
