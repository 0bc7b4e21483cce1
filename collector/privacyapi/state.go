package privacyapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/identity"
	"github.com/consentflow/consentflow/internal/kafkax"
)

// state is what the privacy admin API reads besides the request: the
// receipts of every request, the identity links, the region's database.
// Nil when no operator is configured (the API refuses all).
type state struct {
	cfg          *ingest.Config
	receipts     *receiptBook
	receiptsTail *kafkax.Tail
	links        *identity.Links
	linksTail    *kafkax.Tail
	// copies are the databases an export reads: the region's, then the
	// export destination's, each with its keys.
	copies []dataCopy
}

func newState(cfg *ingest.Config, reg prometheus.Registerer, log *slog.Logger) (*state, error) {
	if len(cfg.Privacy.Operators) == 0 {
		return nil, nil
	}
	keys, err := cfg.Privacy.Pseudonym.Keyring()
	if err != nil {
		return nil, fmt.Errorf("privacy.pseudonym: %w", err)
	}
	p := &state{cfg: cfg, receipts: &receiptBook{byRequest: map[string]map[string]event.Receipt{}}, links: identity.New()}
	if p.receiptsTail, err = kafkax.NewTail(&cfg.Kafka, reg, "collector_receipts", log, []string{cfg.Topics.Receipts.Name}, p.receipts.apply(log)); err != nil {
		return nil, err
	}
	if p.linksTail, err = kafkax.NewTail(&cfg.Kafka, reg, "collector_identities", log, []string{cfg.Topics.Identities.Name}, p.links.Apply(log)); err != nil {
		_ = p.receiptsTail.Shutdown(context.Background())
		return nil, err
	}
	region, err := chx.Open(&cfg.Privacy.Export.ClickHouse)
	if err != nil {
		_ = p.shutdown(context.Background())
		return nil, err
	}
	p.copies = append(p.copies, dataCopy{name: cfg.Region, database: cfg.Privacy.Export.Database, keys: keys, conn: region})
	if a := &cfg.Privacy.Export.Abroad; a.Name != "" {
		c := dataCopy{name: a.Name, database: a.Database}
		if c.keys, err = a.Pseudonym.Keyring(); err == nil {
			c.conn, err = chx.Open(&a.ClickHouse)
		}
		if err != nil {
			_ = p.shutdown(context.Background())
			return nil, fmt.Errorf("privacy.export.abroad: %w", err)
		}
		p.copies = append(p.copies, c)
	}
	return p, nil
}

func (p *state) start(ctx context.Context) error {
	if err := p.receiptsTail.Start(ctx); err != nil {
		return fmt.Errorf("read receipts: %w", err)
	}
	if err := p.linksTail.Start(ctx); err != nil {
		return fmt.Errorf("read identity links: %w", err)
	}
	return nil
}

func (p *state) shutdown(ctx context.Context) error {
	errs := []error{p.receiptsTail.Shutdown(ctx)}
	if p.linksTail != nil {
		errs = append(errs, p.linksTail.Shutdown(ctx))
	}
	for _, c := range p.copies {
		errs = append(errs, c.conn.Close())
	}
	return errors.Join(errs...)
}

// keyCheck is the in-region key in service's check (event.ErasureRecord).
func (p *state) keyCheck() string { return p.copies[0].keys.At(time.Now()).Check() }

// subject is the request's subject as an in-region pseudonym (its userId's
// when it names one) under the key in service.
func (p *state) subject(req subjectRequest) string { return p.copies[0].subject(req) }

// receipt is r as a receipts record.
func (p *state) receipt(r *event.Receipt) (*kgo.Record, error) {
	r.SchemaVersion = event.SchemaVersion
	value, err := event.EncodeReceipt(r)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: p.cfg.Topics.Receipts.Name, Key: []byte(r.Key()), Value: value}, nil
}

// receiptBook holds the latest receipt per key, by request.
type receiptBook struct {
	mu        sync.RWMutex
	byRequest map[string]map[string]event.Receipt
}

func (b *receiptBook) apply(log *slog.Logger) func([]*kgo.Record) {
	return func(records []*kgo.Record) {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, r := range records {
			key := string(r.Key)
			request, _, _ := strings.Cut(key, "/")
			if r.Value == nil {
				delete(b.byRequest[request], key)
				continue
			}
			rc, err := event.DecodeReceipt(r.Value)
			if err != nil {
				log.Warn("skipping an unreadable receipt", "partition", r.Partition, "offset", r.Offset, "err", err)
				continue
			}
			if b.byRequest[rc.RequestID] == nil {
				b.byRequest[rc.RequestID] = map[string]event.Receipt{}
			}
			b.byRequest[rc.RequestID][key] = rc
		}
	}
}

// of lists a request's receipts in the order they were written.
func (b *receiptBook) of(requestID string) []event.Receipt {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]event.Receipt, 0, len(b.byRequest[requestID]))
	for _, r := range b.byRequest[requestID] {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b event.Receipt) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Key(), b.Key())
	})
	return out
}
