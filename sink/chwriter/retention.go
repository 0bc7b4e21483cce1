package chwriter

import (
	"context"
	"fmt"
	"strconv"
	"time"
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
// allows at now and returns how many it dropped.
func (w *Writer) dropExpired(ctx context.Context, now time.Time) (int, error) {
	keep := w.cfg.Retention.oldestKept(now)
	query, args := partitionsQuery(w.cfg.Database)
	rows, err := w.conn.Query(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("list partitions: %w", err)
	}
	var expired []int
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return 0, fmt.Errorf("list partitions: %w", err)
		}
		if month, err := strconv.Atoi(p); err == nil && month < keep {
			expired = append(expired, month)
		}
	}
	rows.Close()
	for i, month := range expired {
		if err := w.conn.Exec(ctx, dropPartitionStatement(w.cfg.Database, month)); err != nil {
			return i, fmt.Errorf("drop partition %d: %w", month, err)
		}
		w.metrics.partitionsDropped.Inc()
		w.log.Info("retention: dropped a month of events", "database", w.cfg.Database, "partition", month, "oldest_kept", keep)
	}
	return len(expired), nil
}
