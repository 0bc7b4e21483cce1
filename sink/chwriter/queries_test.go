package chwriter

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/testenv"
)

var sqlBlock = regexp.MustCompile("(?s)```sql\n(.*?)```")

// TestReadmeQueries loads a known set of events through the sink and runs
// every SQL example in README.md against them, checking the answers.
func TestReadmeQueries(t *testing.T) {
	// The runbook's privacy_audit query e2e's TestErasureEndToEnd runs on
	// a real erasure.
	queries, _ := readmeSQL(t)

	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for _, c := range readmeEvents() {
		v, _ := json.Marshal(c)
		recs = append(recs, &kgo.Record{Topic: f.cfg.Topics.Clean.Name, Key: []byte(c.Subject), Value: v})
	}
	testenv.Produce(t, ctx, f.brokers, recs...)
	f.waitRows(t, ctx, len(recs))

	want := readmeAnswers
	// Every example is checked: a new one needs its answer here.
	if len(queries) != len(want) {
		t.Fatalf("found %d SQL examples in README.md, want %d (one per expected answer in this test)", len(queries), len(want))
	}
	for i, q := range queries {
		q = strings.ReplaceAll(q, "analytics_cn.", f.cfg.Database+".")
		got := queryStrings(t, ctx, f, q)
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("README query %d:\n%s\ngot  %v\nwant %v", i+1, q, got, want[i])
		}
	}
}

// readmeSQL returns the SQL examples of README.md: the analysts' queries
// of the events, and those of the privacy office's privacy_audit.
func readmeSQL(t *testing.T) (events, audit []string) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sqlBlock.FindAllStringSubmatch(string(readme), -1) {
		if strings.Contains(m[1], "privacy_audit") {
			audit = append(audit, m[1])
		} else {
			events = append(events, m[1])
		}
	}
	return events, audit
}

// readmeEvents are the events the README's example queries run on, in
// TestReadmeQueries and TestStatementsOnCurrentEngine.
func readmeEvents() []event.Clean {
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	type ev struct {
		subject, name string
		at            time.Time
		sku           string
		dnt           bool
	}
	events := []ev{
		// alice: the whole funnel on the 1st, back on the 2nd and the 8th
		{"alice", "Product Viewed", day(1, 9), "sku-1", false},
		{"alice", "Product Added", day(1, 10), "sku-1", false},
		{"alice", "Order Completed", day(1, 11), "", false},
		{"alice", "Product Viewed", day(2, 9), "sku-2", false},
		{"alice", "Product Viewed", day(8, 9), "sku-1", false},
		// bob: views and adds on the 1st, back on the 2nd, with DNT
		{"bob", "Product Viewed", day(1, 12), "sku-1", true},
		{"bob", "Product Added", day(1, 13), "sku-1", true},
		{"bob", "Product Viewed", day(2, 12), "sku-3", true},
		// carol: one view on the 1st
		{"carol", "Product Viewed", day(1, 15), "sku-2", false},
	}
	// Where each subject is and what their consent allows (bob's DNT
	// withdraws analytics, personalization and marketing).
	country := map[string]string{"alice": "CN", "bob": "DE", "carol": "CN"}
	purposes := map[string][]string{
		"alice": {"analytics", "personalization"},
		"bob":   {"third_party_sharing"},
		"carol": {"analytics", "marketing"},
	}
	var out []event.Clean
	for i, e := range events {
		c := event.Clean{SchemaVersion: event.SchemaVersion, MessageID: fmt.Sprintf("q-%d", i), Type: "track", Event: e.name,
			Timestamp: e.at, ReceivedAt: e.at, SourceID: "web", Region: "cn", Subject: "k1." + e.subject, DNT: e.dnt,
			Country: country[e.subject], Purposes: purposes[e.subject]}
		if e.sku != "" {
			c.Properties = json.RawMessage(`{"sku":"` + e.sku + `"}`)
		}
		out = append(out, c)
	}
	return out
}

// readmeAnswers are the answers of the README's example queries (but the
// runbook's privacy_audit one), in order, on readmeEvents.
var readmeAnswers = [][][]string{
	{{"2026-11-01", "3"}, {"2026-11-02", "2"}, {"2026-11-08", "1"}},
	{{"sku-1", "3"}, {"sku-2", "2"}, {"sku-3", "1"}},
	{{"1", "1"}, {"2", "1"}, {"3", "1"}},
	{{"3", "2", "1"}},
	{{"2026-11-01", "2", "6"}, {"2026-11-02", "1", "2"}, {"2026-11-08", "0", "1"}},
	{{"2026-11-01", "CN", "4"}, {"2026-11-01", "DE", "2"}, {"2026-11-02", "CN", "1"}, {"2026-11-02", "DE", "1"}, {"2026-11-08", "CN", "1"}},
	{{"Product Viewed", "4", "2"}, {"Order Completed", "1", "1"}, {"Product Added", "1", "1"}},
}

// queryStrings runs q and returns every value as text.
func queryStrings(t *testing.T, ctx context.Context, f *fixture, q string) [][]string {
	t.Helper()
	rows, err := f.conn.Query(ctx, q)
	if err != nil {
		t.Fatalf("query fails on this server: %v\n%s", err, q)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		types := rows.ColumnTypes()
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(dest))
		for i, d := range dest {
			v := reflect.ValueOf(d).Elem().Interface()
			if tm, ok := v.(time.Time); ok {
				v = tm.Format("2006-01-02")
			}
			row[i] = fmt.Sprint(v)
		}
		out = append(out, row)
	}
	return out
}
