package chwriter

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
)

// ReapplyReport is what Reapply did.
type ReapplyReport struct {
	// Notices is how many erasure notices the topic holds; Unreadable how
	// many of them did not decode (the running sink dead-letters those).
	Notices, Unreadable int
	// Rows is how many rows of erased subjects were found and deleted.
	Rows int64
	// Mutations is how many ALTER TABLE ... DELETE it took.
	Mutations int
}

// Reapply deletes from cfg's database the rows of every subject named by
// the destination's erasure notices (topics.erasures, kept forever), in
// mutations of erasure.max_subjects notices, and verifies none remain. It
// is the step after restoring a ClickHouse backup: the backup predates
// some erasures, and this brings it up to date. Safe to run at any time
// and as often as wanted; it writes no receipts.
func Reapply(ctx context.Context, cfg Config, log *slog.Logger) (ReapplyReport, error) {
	var mu sync.Mutex
	var report ReapplyReport
	var notices []event.ErasureNotice
	tail, err := kafkax.NewTail(&cfg.Kafka, prometheus.NewRegistry(), "sink_reapply", log, []string{cfg.Topics.Erasures.Name}, func(records []*kgo.Record) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range records {
			report.Notices++
			n, err := event.DecodeErasureNotice(r.Value)
			if err != nil {
				report.Unreadable++
				continue
			}
			notices = append(notices, n)
		}
	})
	if err != nil {
		return report, err
	}
	err = tail.Start(ctx)
	_ = tail.Shutdown(context.Background())
	if err != nil {
		return report, err
	}
	conn, err := chx.Open(&cfg.ClickHouse)
	if err != nil {
		return report, err
	}
	defer conn.Close()
	d := &deleter{conn: conn, db: cfg.Database, timeout: cfg.Erasure.Timeout, log: log, mutations: func() {}}
	if cfg.Cluster != "" {
		// Verified on every replica, as the running sink's erasures are.
		if d.replicas, err = discoverReplicas(ctx, conn, &cfg.ClickHouse, cfg.Cluster); err != nil {
			return report, err
		}
		defer closeReplicas(d.replicas)
	}
	mu.Lock()
	defer mu.Unlock()
	for start := 0; start < len(notices); start += cfg.Erasure.MaxSubjects {
		var s subjects
		for i := start; i < min(start+cfg.Erasure.MaxSubjects, len(notices)); i++ {
			s.add(&notices[i])
		}
		found, mutations, err := d.erase(ctx, &s)
		report.Mutations += mutations
		if err != nil {
			return report, fmt.Errorf("notices %d to %d: %w", start+1, min(start+cfg.Erasure.MaxSubjects, len(notices)), err)
		}
		for _, m := range found {
			report.Rows += m.rows
		}
		log.Info("erasures reapplied", "notices", min(start+cfg.Erasure.MaxSubjects, len(notices)), "of", len(notices), "rows_deleted", report.Rows)
	}
	return report, nil
}
