package chwriter

// The audit loader copies privacy.receipts into <database>.privacy_audit,
// so the privacy office can prove with SQL what happened to each request.
//
// Delivery: at least once. Receipts are inserted, then their offsets are
// committed; a crash between the two inserts them again, and the table's
// ReplacingMergeTree folds the copies (SELECT ... FINAL).

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
)

// reasonInvalidReceipt: a receipt that does not decode.
const reasonInvalidReceipt = "invalid_receipt"

type auditor struct {
	cfg     *Config
	conn    driver.Conn
	client  *kgo.Client
	log     *slog.Logger
	metrics *erasureMetrics
}

func (a *auditor) run(ctx context.Context) error {
	kafkax.PollWork(ctx, a.client, 10000, privacyBackoff, a.log, "loading audit receipts", a.load)
	return nil
}

// load inserts the receipts among records; tombstones are skipped and
// receipts that do not decode go to the dead-letter topic.
func (a *auditor) load(ctx context.Context, records []*kgo.Record) error {
	batch, err := a.conn.PrepareBatch(ctx, auditInsert(a.cfg.Database))
	if err != nil {
		return fmt.Errorf("prepare audit insert: %w", err)
	}
	var dead []*kgo.Record
	n := 0
	for _, rec := range records {
		if rec.Value == nil {
			continue
		}
		r, err := event.DecodeReceipt(rec.Value)
		if err != nil {
			dead = append(dead, kafkax.DeadLetter(rec, a.cfg.Topics.DLQ.Name, stage, reasonInvalidReceipt, fmt.Errorf("decode receipt: %w", err)))
			continue
		}
		if err := batch.Append(auditValues(&r)...); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append audit row: %w", err)
		}
		n++
	}
	if len(dead) > 0 {
		if err := a.client.ProduceSync(ctx, dead...).FirstErr(); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("dead-letter receipts: %w", err)
		}
	}
	if n == 0 {
		_ = batch.Abort()
		return nil
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert audit rows: %w", err)
	}
	a.metrics.auditRows.Add(float64(n))
	return nil
}
