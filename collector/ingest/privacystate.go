package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/identity"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/policy"
)

// privacyState is what the privacy admin API reads besides the request:
// the receipts of every request, the identity links, the region's
// database. Nil when no operator is configured (the API refuses all).
type privacyState struct {
	cfg          *Config
	receipts     *receiptBook
	receiptsTail *kafkax.Tail
	links        *identity.Links
	linksTail    *kafkax.Tail
	// copies are the databases an export reads: the region's, then the
	// export destination's, each with its keys.
	copies []dataCopy
}

// dataCopy is one database holding a subject's rows, under its own keys.
type dataCopy struct {
	name, database string
	keys           *policy.Keyring
	conn           driver.Conn
}

func newPrivacyState(cfg *Config, reg prometheus.Registerer, log *slog.Logger) (*privacyState, error) {
	if len(cfg.Privacy.Operators) == 0 {
		return nil, nil
	}
	keys, err := cfg.Privacy.Pseudonym.Keyring()
	if err != nil {
		return nil, fmt.Errorf("privacy.pseudonym: %w", err)
	}
	p := &privacyState{cfg: cfg, receipts: &receiptBook{byRequest: map[string]map[string]event.Receipt{}}, links: identity.New()}
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

func (p *privacyState) start(ctx context.Context) error {
	if err := p.receiptsTail.Start(ctx); err != nil {
		return fmt.Errorf("read receipts: %w", err)
	}
	if err := p.linksTail.Start(ctx); err != nil {
		return fmt.Errorf("read identity links: %w", err)
	}
	return nil
}

func (p *privacyState) shutdown(ctx context.Context) error {
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
func (p *privacyState) keyCheck() string { return p.copies[0].keys.At(time.Now()).Check() }

// subject is the request's subject as an in-region pseudonym (its userId's
// when it names one) under the key in service.
func (p *privacyState) subject(req subjectRequest) string { return p.copies[0].subject(req) }

// receipt is r as a receipts record.
func (p *privacyState) receipt(r *event.Receipt) (*kgo.Record, error) {
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

// Erasure statuses, overall and per destination.
const (
	statusPending = "pending"
	statusDone    = "done"
)

// erasureStatus is the answer of GET /v1/privacy/erasures/{id}.
type erasureStatus struct {
	RequestID   string    `json:"requestId"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	Operator    string    `json:"operator,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
	// Subjects is how many identifiers the request named.
	Subjects int `json:"subjects"`
	// Notified says the enricher suppressed every subject and told every
	// destination.
	Notified bool `json:"notified"`
	// Destinations are the regions and export destinations notified.
	Destinations map[string]destinationStatus `json:"destinations"`
	Receipts     []event.Receipt              `json:"receipts"`
}

// destinationStatus is one destination's part of an erasure.
type destinationStatus struct {
	// Status is done once the destination's sink verified that no row of
	// any subject remains, failed if it gave up, else pending.
	Status string `json:"status"`
	// RowsDeleted is what its sink found and deleted.
	RowsDeleted int64      `json:"rowsDeleted"`
	VerifiedAt  *time.Time `json:"verifiedAt,omitempty"`
}

// erasureStatusOf folds a request's receipts into its status; ok false
// means no receipt names the request.
func erasureStatusOf(requestID string, receipts []event.Receipt) (erasureStatus, bool) {
	st := erasureStatus{RequestID: requestID, Status: statusPending, Destinations: map[string]destinationStatus{}, Receipts: receipts}
	notified := 0
	for _, r := range receipts {
		if r.Kind != event.ReceiptErasure {
			continue
		}
		switch r.Stage {
		case event.StageCollector:
			st.Reason, st.Operator, st.RequestedAt, st.Subjects = r.Reason, r.Operator, r.RequestedAt, r.Subjects
		case event.StageEnricher:
			notified++
			for _, d := range r.Destinations {
				if _, ok := st.Destinations[d]; !ok {
					st.Destinations[d] = destinationStatus{Status: statusPending}
				}
			}
		}
	}
	if len(receipts) == 0 {
		return st, false
	}
	st.Notified = st.Subjects > 0 && notified >= st.Subjects
	done := st.Notified && len(st.Destinations) > 0
	for name, d := range st.Destinations {
		verified := 0
		for _, r := range receipts {
			if r.Stage != event.StageSink || r.Destination != name {
				continue
			}
			switch r.Status {
			case event.StatusDeleted:
				verified++
				d.RowsDeleted += r.Rows
				if d.VerifiedAt == nil || r.At.After(*d.VerifiedAt) {
					at := r.At
					d.VerifiedAt = &at
				}
			case event.StatusFailed:
				d.Status = event.StatusFailed
			}
		}
		if d.Status != event.StatusFailed && verified >= st.Subjects {
			d.Status = statusDone
		} else {
			d.VerifiedAt = nil
			done = false
		}
		st.Destinations[name] = d
	}
	if done {
		st.Status = statusDone
	}
	return st, true
}

// statusWait bounds how long a status request waits for the receipts
// written before it to be read.
const statusWait = 2 * time.Second

// handleErasureStatus serves GET /v1/privacy/erasures/{id}.
func (s *Server) handleErasureStatus(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.privacyRequest(w, r, func(res result) { res.write(w) }); !ok {
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), statusWait)
	defer cancel()
	if err := s.privacy.receiptsTail.WaitCaughtUp(ctx); err != nil {
		s.log.Warn("receipts not caught up; answering what is known", "err", err)
	}
	st, ok := erasureStatusOf(id, s.privacy.receipts.of(id))
	if !ok {
		fail(http.StatusNotFound, "no erasure request %q (ids are what POST /v1/privacy/erasures answered)", id).write(w)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// exportAnswer is the answer of POST /v1/privacy/exports: the region's
// rows, and those of every other copy (the export destination's).
type exportAnswer struct {
	RequestID string `json:"requestId"`
	// Subject is the subject's in-region pseudonym, as the rows hold it.
	Subject  string `json:"subject"`
	Database string `json:"database"`
	// LinkedAnonymousIDs counts the devices linked to the userId whose rows
	// are included.
	LinkedAnonymousIDs int              `json:"linkedAnonymousIds"`
	Rows               []map[string]any `json:"rows"`
	// Destinations are the copies abroad, each under its own pseudonyms.
	Destinations []exportedCopy `json:"destinations"`
}

// exportedCopy is a subject's rows in one export destination's database.
type exportedCopy struct {
	Name     string           `json:"name"`
	Database string           `json:"database"`
	Subject  string           `json:"subject"`
	Rows     []map[string]any `json:"rows"`
}

// handleExport serves POST /v1/privacy/exports.
func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	refuse := func(res result) {
		s.metrics.exports.WithLabelValues("refused").Inc()
		res.write(w)
	}
	op, body, ok := s.privacyRequest(w, r, refuse)
	if !ok {
		return
	}
	req, err := decodeSubject(body, false)
	if err != nil {
		refuse(fail(http.StatusBadRequest, "%v", err))
		return
	}
	requestID := event.NewID()
	p := s.privacy
	if err := p.linksTail.WaitCaughtUp(r.Context()); err != nil {
		refuse(fail(http.StatusServiceUnavailable, "identity links not readable: %v", err))
		return
	}
	var linked []string
	if req.userID != "" {
		linked = slices.DeleteFunc(p.links.Of(req.userID), func(a string) bool { return a == req.anonymousID })
	}
	copies := make([]exportedCopy, len(p.copies))
	total := 0
	for i, c := range p.copies {
		users, anons := c.pseudonyms(req, linked, p.links)
		rows, err := c.rows(r.Context(), users, anons, s.cfg.Privacy.Export.MaxRows-total, s.cfg.Privacy.Export.Timeout)
		total += len(rows)
		switch {
		case errors.Is(err, errTooManyRows):
			refuse(fail(http.StatusRequestEntityTooLarge, "the subject has more than %d rows (privacy.export.max_rows): export it from ClickHouse directly", s.cfg.Privacy.Export.MaxRows))
			return
		case err != nil:
			s.metrics.exports.WithLabelValues("failed").Inc()
			s.log.Warn("export failed", "request_id", requestID, "operator", op.name, "destination", c.name, "err", err)
			res := fail(http.StatusServiceUnavailable, "export failed: %v", err)
			res.retryAfter = time.Second
			res.write(w)
			return
		}
		copies[i] = exportedCopy{Name: c.name, Database: c.database, Subject: c.subject(req), Rows: rows}
	}
	now := s.now().UTC()
	subject := p.subject(req)
	names := make([]string, len(copies))
	for i, c := range copies {
		names[i] = c.Name
	}
	receipt, err := p.receipt(&event.Receipt{RequestID: requestID, Kind: event.ReceiptExport, Stage: event.StageCollector,
		Status: event.StatusServed, Operator: op.name, Subject: subject, RequestedAt: now, At: now, Rows: int64(total),
		LinkedAnonymousIDs: len(linked), Destinations: names})
	if err == nil {
		err = s.produce([]*kgo.Record{receipt})
	}
	if err != nil {
		// No answer without its audit record.
		s.metrics.exports.WithLabelValues("failed").Inc()
		res := fail(http.StatusServiceUnavailable, "export not recorded in the audit: %v; retry later", err)
		res.retryAfter = time.Second
		res.write(w)
		return
	}
	s.metrics.exports.WithLabelValues("served").Inc()
	s.log.Info("export served", "request_id", requestID, "operator", op.name, "rows", total)
	writeJSON(w, http.StatusOK, exportAnswer{RequestID: requestID, Subject: subject, Database: copies[0].Database,
		LinkedAnonymousIDs: len(linked), Rows: copies[0].Rows, Destinations: copies[1:]})
}

// pseudonyms are the subject's pseudonyms in c under every key of c's
// keyring: its userId's, its anonymousId's, and those of the devices
// linked to the userId.
func (c dataCopy) pseudonyms(req subjectRequest, linked []string, links *identity.Links) (users, anons []string) {
	if req.userID != "" {
		users = c.keys.Pseudonyms(policy.KindUser, req.userID)
	}
	if req.anonymousID != "" {
		anons = c.keys.Pseudonyms(policy.KindAnonymous, req.anonymousID)
	}
	for _, a := range linked {
		// A linked id is an anonymousId, or an alias's earlier userId.
		anons = append(anons, c.keys.Pseudonyms(policy.KindAnonymous, a)...)
		if links.Aliased(a) {
			users = append(users, c.keys.Pseudonyms(policy.KindUser, a)...)
		}
	}
	return users, anons
}

// subject is the request's subject as c's pseudonym (its userId's when
// it names one) under the key in service.
func (c dataCopy) subject(req subjectRequest) string {
	if req.userID != "" {
		return c.keys.At(time.Now()).Pseudonym(policy.KindUser, req.userID)
	}
	return c.keys.At(time.Now()).Pseudonym(policy.KindAnonymous, req.anonymousID)
}

var errTooManyRows = errors.New("too many rows")

// rows reads every column of the subject's rows in c, oldest first, at
// most max of them. context and properties, JSON text in the table, stay
// JSON.
func (c dataCopy) rows(ctx context.Context, users, anonymous []string, max int, timeout time.Duration) ([]map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	where, args := chx.SubjectsWhere(users, anonymous)
	// No settings with the query: a readonly=1 user may change none, and
	// one subject's pseudonyms fit the default max_query_size.
	rows, err := c.conn.Query(ctx, fmt.Sprintf("SELECT * FROM %s.events WHERE %s ORDER BY event_time, message_id LIMIT %d",
		c.database, where, max+1), args...)
	if err != nil {
		return nil, fmt.Errorf("query %s.events: %w", c.database, err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	out := []map[string]any{}
	for rows.Next() {
		if len(out) == max {
			return nil, errTooManyRows
		}
		values := make([]any, len(types))
		for i, t := range types {
			values[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(values...); err != nil {
			return nil, fmt.Errorf("read %s.events: %w", c.database, err)
		}
		row := make(map[string]any, len(types))
		for i, t := range types {
			v := reflect.ValueOf(values[i]).Elem().Interface()
			if s, ok := v.(string); ok && (t.Name() == "context" || t.Name() == "properties") && json.Valid([]byte(s)) {
				v = json.RawMessage(s)
			}
			row[t.Name()] = v
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
