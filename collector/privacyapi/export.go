package privacyapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/identity"
	"github.com/consentflow/consentflow/internal/policy"
)

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
func (a *API) handleExport(w http.ResponseWriter, r *http.Request) {
	refuse := func(res result) {
		a.metrics.exports.WithLabelValues("refused").Inc()
		res.write(w)
	}
	op, req, ok := a.subjectRequest(w, r, refuse, false)
	if !ok {
		return
	}
	requestID := event.NewID()
	p := a.state
	if err := p.linksTail.WaitCaughtUp(r.Context()); err != nil {
		refuse(fail(http.StatusServiceUnavailable, "identity links not readable: %v", err))
		return
	}
	var linked []string
	if req.userID != "" {
		linked = slices.DeleteFunc(p.links.Of(req.userID), func(anon string) bool { return anon == req.anonymousID })
	}
	copies := make([]exportedCopy, len(p.copies))
	total := 0
	for i, c := range p.copies {
		users, anons := c.pseudonyms(req, linked, p.links)
		rows, err := c.rows(r.Context(), users, anons, a.cfg.Privacy.Export.MaxRows-total, a.cfg.Privacy.Export.Timeout)
		total += len(rows)
		switch {
		case errors.Is(err, errTooManyRows):
			refuse(fail(http.StatusRequestEntityTooLarge, "the subject has more than %d rows (privacy.export.max_rows): export it from ClickHouse directly", a.cfg.Privacy.Export.MaxRows))
			return
		case err != nil:
			a.metrics.exports.WithLabelValues("failed").Inc()
			a.log.Warn("export failed", "request_id", requestID, "operator", op.name, "destination", c.name, "err", err)
			res := fail(http.StatusServiceUnavailable, "export failed: %v", err)
			res.retryAfter = time.Second
			res.write(w)
			return
		}
		copies[i] = exportedCopy{Name: c.name, Database: c.database, Subject: c.subject(req), Rows: rows}
	}
	now := a.now().UTC()
	subject := p.subject(req)
	names := make([]string, len(copies))
	for i, c := range copies {
		names[i] = c.Name
	}
	receipt, err := p.receipt(&event.Receipt{RequestID: requestID, Kind: event.ReceiptExport, Stage: event.StageCollector,
		Status: event.StatusServed, Operator: op.name, Subject: subject, RequestedAt: now, At: now, Rows: int64(total),
		LinkedAnonymousIDs: len(linked), Destinations: names})
	if err == nil {
		err = a.produce([]*kgo.Record{receipt})
	}
	if err != nil {
		// No answer without its audit record.
		a.metrics.exports.WithLabelValues("failed").Inc()
		res := fail(http.StatusServiceUnavailable, "export not recorded in the audit: %v; retry later", err)
		res.retryAfter = time.Second
		res.write(w)
		return
	}
	a.metrics.exports.WithLabelValues("served").Inc()
	a.log.Info("export served", "request_id", requestID, "operator", op.name, "rows", total)
	writeJSON(w, http.StatusOK, exportAnswer{RequestID: requestID, Subject: subject, Database: copies[0].Database,
		LinkedAnonymousIDs: len(linked), Rows: copies[0].Rows, Destinations: copies[1:]})
}

// dataCopy is one database holding a subject's rows, under its own keys.
type dataCopy struct {
	name, database string
	keys           *policy.Keyring
	conn           driver.Conn
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
	// No settings with the query: a readonly=1 user may change none, and
	// one subject's pseudonyms fit the default max_query_size.
	query, args := chx.ExportQuery(c.database, users, anonymous, max+1)
	rows, err := c.conn.Query(ctx, query, args...)
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
