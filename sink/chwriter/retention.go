package chwriter

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Retention drops whole months of events once they are older than the
// configured retention: the privacy policy keeps personal data only as
// long as it is needed, and dropping a partition is how ClickHouse 18.16
// deletes in bulk (it has no TTL).
type Retention struct {
	// Months is how many calendar months are kept, the current one
	// included: 3 in November keeps September to November. Zero keeps
	// everything.
	Months int `mapstructure:"months"`
	// Interval is how often expired months are looked for. Zero means 1h.
	Interval time.Duration `mapstructure:"interval"`
}

// oldestKept is the first partition (YYYYMM, as toYYYYMM writes it) that
// retention keeps at now.
func (r Retention) oldestKept(now time.Time) int {
	m := now.UTC().Year()*12 + int(now.UTC().Month()) - 1 - (r.Months - 1)
	return (m/12)*100 + m%12 + 1
}

// runRetention drops expired partitions now and then every interval until
// ctx ends.
func (w *Writer) runRetention(ctx context.Context) {
	interval := w.cfg.Retention.Interval
	if interval == 0 {
		interval = time.Hour
	}
	for {
		if _, err := w.dropExpired(ctx, time.Now()); err != nil && ctx.Err() == nil {
			w.log.Warn("retention: dropping expired partitions failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// dropExpired drops the events table's partitions older than retention
// allows at now and returns how many it dropped. On a cluster it lists
// the months of every replica, drops each once (DROP PARTITION of a
// replicated table reaches every replica through ZooKeeper; the setting
// makes it wait for them all) and then checks every replica holds none of
// them, failing (retried next interval) while one does.
func (w *Writer) dropExpired(ctx context.Context, now time.Time) (int, error) {
	keep := w.cfg.Retention.oldestKept(now)
	servers := w.replicas
	if servers == nil {
		servers = []replica{{addr: "", conn: w.conn}}
	}
	expired := map[int]bool{}
	err := eachReplica(servers, func(r replica) error {
		months, err := w.months(ctx, r.conn)
		for _, m := range months {
			if m < keep {
				expired[m] = true
			}
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	months := slices.Sorted(maps.Keys(expired))
	dropCtx := ctx
	if w.replicas != nil {
		dropCtx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"replication_alter_partitions_sync": 2}))
	}
	for i, month := range months {
		if err := w.conn.Exec(dropCtx, dropPartitionStatement(w.cfg.Database, month)); err != nil {
			return i, fmt.Errorf("drop partition %d: %w", month, err)
		}
		w.metrics.partitionsDropped.Inc()
		w.log.Info("retention: dropped a month of events", "database", w.cfg.Database, "partition", month, "oldest_kept", keep)
	}
	if w.replicas == nil || len(months) == 0 {
		return len(months), nil
	}
	return len(months), eachReplica(w.replicas, func(r replica) error {
		left, err := w.months(ctx, r.conn)
		for _, m := range left {
			if expired[m] {
				return fmt.Errorf("partition %d still there after DROP PARTITION", m)
			}
		}
		return err
	})
}

// months lists the partitions (YYYYMM) of the events table on one server.
func (w *Writer) months(ctx context.Context, conn driver.Conn) ([]int, error) {
	query, args := partitionsQuery(w.cfg.Database)
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	defer rows.Close()
	var months []int
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("list partitions: %w", err)
		}
		if month, err := strconv.Atoi(p); err == nil {
			months = append(months, month)
		}
	}
	return months, rows.Err()
}
