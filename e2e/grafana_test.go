package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Grafana files under deployments/grafana: dashboards loaded by the
// file provider, and the provisioned Prometheus datasource every panel
// names by its uid.
const (
	dashboardsDir      = "../deployments/grafana/dashboards"
	datasourceFile     = "../deployments/grafana/provisioning/datasources/prometheus.yaml"
	dashboardsProvider = "../deployments/grafana/provisioning/dashboards/consentflow.yaml"
)

// grafanaDashboard is the part of a dashboard's JSON the tests read.
type grafanaDashboard struct {
	file          string
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *grafanaDatasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string             `json:"refId"`
		Expr       string             `json:"expr"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

type grafanaVariable struct {
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Datasource *grafanaDatasource `json:"datasource"`
	Query      json.RawMessage    `json:"query"` // "label_values(...)" or {"query": "label_values(...)"}
}

// query is a query variable's Prometheus query.
func (v grafanaVariable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var q struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &q)
	return q.Query
}

// allPanels is every panel of d, those in collapsed rows included.
func (d grafanaDashboard) allPanels() []grafanaPanel {
	var all []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return all
}

// loadDashboards decodes every dashboard the file provider loads.
func loadDashboards(t *testing.T) []grafanaDashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no dashboards in %s", dashboardsDir)
	}
	var ds []grafanaDashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d grafanaDashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = filepath.Base(f)
		ds = append(ds, d)
	}
	return ds
}

// provisionedDatasourceUID is the uid of the provisioned Prometheus
// datasource (one datasource, written `uid: <uid>`).
func provisionedDatasourceUID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(datasourceFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"type: prometheus", "url: http://prometheus:9090"} {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q", datasourceFile, want)
		}
	}
	m := regexp.MustCompile(`(?m)^\s+uid:\s*"?([A-Za-z0-9_-]+)"?\s*$`).FindAllStringSubmatch(text, -1)
	if len(m) != 1 {
		t.Fatalf("%s: want one datasource uid, found %d", datasourceFile, len(m))
	}
	return m[0][1]
}

// grafanaVar is a Grafana variable in a query: $name, ${name},
// ${name:format} or [[name]].
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// TestGrafanaDashboards checks the dashboards without services: each
// decodes, has its own uid and title, and every panel and query variable
// reads the provisioned Prometheus datasource by its uid.
func TestGrafanaDashboards(t *testing.T) {
	uid := provisionedDatasourceUID(t)
	provider, err := os.ReadFile(dashboardsProvider)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"type: file", "path: "} {
		if !strings.Contains(string(provider), want) {
			t.Errorf("%s lacks %q", dashboardsProvider, want)
		}
	}
	uids, titles := map[string]string{}, map[string]string{}
	for _, d := range loadDashboards(t) {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: no uid or title", d.file)
		}
		if len(d.UID) > 40 {
			t.Errorf("%s: uid %q is longer than Grafana's 40 characters", d.file, d.UID)
		}
		if f, ok := uids[d.UID]; ok {
			t.Errorf("%s and %s share the uid %q", f, d.file, d.UID)
		}
		if f, ok := titles[d.Title]; ok {
			t.Errorf("%s and %s share the title %q", f, d.file, d.Title)
		}
		uids[d.UID], titles[d.Title] = d.file, d.file
		if d.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d, want a current one (39)", d.file, d.SchemaVersion)
		}
		variables := map[string]bool{}
		for _, v := range d.Templating.List {
			variables[v.Name] = true
			if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != uid) {
				t.Errorf("%s: variable %s does not read the datasource %q", d.file, v.Name, uid)
			}
		}
		ids := map[int]bool{}
		queries := 0
		for _, p := range d.allPanels() {
			where := fmt.Sprintf("%s: panel %d %q", d.file, p.ID, p.Title)
			if p.ID == 0 || ids[p.ID] {
				t.Errorf("%s: no id, or one another panel has", where)
			}
			ids[p.ID] = true
			if p.Title == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("%s: no title or no size", where)
			}
			if p.Type == "row" || p.Type == "text" {
				if len(p.Targets) > 0 {
					t.Errorf("%s: a %s with queries", where, p.Type)
				}
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != uid || p.Datasource.Type != "prometheus" {
				t.Errorf("%s: datasource %+v, want the provisioned prometheus %q", where, p.Datasource, uid)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			refs := map[string]bool{}
			for _, q := range p.Targets {
				queries++
				if q.Expr == "" || q.RefID == "" || refs[q.RefID] {
					t.Errorf("%s: a query without expr, or without its own refId", where)
				}
				refs[q.RefID] = true
				if q.Datasource != nil && q.Datasource.UID != uid {
					t.Errorf("%s: query %s reads datasource %q", where, q.RefID, q.Datasource.UID)
				}
				for _, m := range grafanaVar.FindAllStringSubmatch(q.Expr, -1) {
					name := m[1] + m[2] + m[3]
					if !strings.HasPrefix(name, "__") && !variables[name] {
						t.Errorf("%s: query %s uses the undefined variable %s", where, q.RefID, name)
					}
				}
			}
		}
		if queries == 0 {
			t.Errorf("%s: no queries", d.file)
		}
	}
}

// promExpr replaces Grafana's variables in a panel's query as Grafana
// would before sending it: interval variables by 1m, dashboard variables
// by a regular expression matching every value. Dashboard variables must
// stand in a regex matcher (label=~"$var"), where Grafana puts the
// selected values as an alternation.
func promExpr(expr string) (string, error) {
	var err error
	out := grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		m := grafanaVar.FindStringSubmatch(v)
		name := m[1] + m[2] + m[3]
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "1m"
		case "__interval_ms", "__range_ms":
			return "60000"
		case "__range_s":
			return "60"
		}
		return ".*"
	})
	for _, loc := range grafanaVar.FindAllStringIndex(expr, -1) {
		name := grafanaVar.FindStringSubmatch(expr[loc[0]:loc[1]])
		if strings.HasPrefix(name[1]+name[2]+name[3], "__") {
			continue
		}
		if !strings.HasSuffix(expr[:loc[0]], `=~"`) {
			err = fmt.Errorf("variable %s outside a regex matcher (=~\"$var\")", expr[loc[0]:loc[1]])
		}
	}
	return out, err
}

// promqlKeywords are PromQL's words that are not metric names where an
// identifier without a following "(" may stand.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true, "atan2": true,
}

// promqlAggregations may take their grouping before the parenthesis: sum by (job) (x).
var promqlAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// metricNames lists the metric names a PromQL expression's vector
// selectors name: the name before a selector's braces, and the names of a
// {__name__="a"} or {__name__=~"a|b"} matcher (a plain alternation only).
// Function and aggregation names, keywords, label names (in braces and in
// by, without, on, ignoring and group_* lists), strings, numbers,
// durations and comments are skipped.
func metricNames(expr string) ([]string, error) {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	next := func(i int) int { // the index of the next non-space byte
		for i < len(expr) && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
			i++
		}
		return i
	}
	word := func(i int) (string, int) {
		j := i
		for j < len(expr) && isPart(expr[j]) {
			j++
		}
		return expr[i:j], j
	}
	inBraces, label, op := false, "", ""
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			var value strings.Builder
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' && j+1 < len(expr) {
					j++
				}
				value.WriteByte(expr[j])
				j++
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			i = j + 1
			if inBraces && label == "__name__" {
				switch op {
				case "=":
					names = append(names, value.String())
				case "=~":
					if !regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\|[a-zA-Z_:][a-zA-Z0-9_:]*)*$`).MatchString(value.String()) {
						return nil, fmt.Errorf("__name__=~%q is not a plain alternation of names", value.String())
					}
					names = append(names, strings.Split(value.String(), "|")...)
				}
			}
		case c == '{':
			inBraces, label, op = true, "", ""
			i++
		case c == '}':
			inBraces = false
			i++
		case c == '[': // a range or subquery: durations only
			for i < len(expr) && expr[i] != ']' {
				i++
			}
		case inBraces && strings.IndexByte("=!~", c) >= 0:
			j := i
			for j < len(expr) && strings.IndexByte("=!~", expr[j]) >= 0 {
				j++
			}
			op, i = expr[i:j], j
		case c >= '0' && c <= '9' || c == '.': // a number or duration
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.') {
				i++
			}
		case isStart(c):
			w, j := word(i)
			i = j
			lower := strings.ToLower(w)
			k := next(j)
			switch {
			case inBraces:
				label, op = w, ""
			case k < len(expr) && expr[k] == '(' && (lower == "by" || lower == "without" || lower == "on" ||
				lower == "ignoring" || lower == "group_left" || lower == "group_right"):
				// A list of label names.
				for i = k; i < len(expr) && expr[i] != ')'; i++ {
				}
			case k < len(expr) && expr[k] == '(':
				// A function or an aggregation.
			case promqlKeywords[lower]:
			case promqlAggregations[lower] && k < len(expr) && isStart(expr[k]):
				// sum by (...) (...): the grouping before the parenthesis.
				if g, _ := word(k); g != "by" && g != "without" {
					return nil, fmt.Errorf("%s followed by %s", w, g)
				}
			default:
				names = append(names, w)
			}
		default:
			i++
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// TestDashboardMetricNames checks the extraction the dashboard check relies on.
func TestDashboardMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (job, le) (rate(foo_bucket{job=~"a|b", le!="x"}[5m] offset 1m))`:                         {"foo_bucket"},
		`a / on (job) group_left (version) b or {__name__=~"c|d"} and bool e`:                            {"a", "b", "c", "d", "e"},
		`histogram_quantile(0.99, sum without (instance) (rate(x[1m:10s]))) > 1e3 unless vector(1)`:      {"x"},
		`max(y{__name__="z", a="rate(q)"}) # comment naming w`:                                           {"y", "z"},
		`sum(rate(collector_events_rejected_total{reason=~"invalid|too_large"}[1m])) * 100 + Inf + -NaN`: {"collector_events_rejected_total"},
		`count_values("v", up) or topk(3, sink:rate5m) or label_replace(k, "a", "$1", "b", "(.*)")`:      {"k", "sink:rate5m", "up"},
	} {
		got, err := metricNames(expr)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %q, %v; want %q", expr, got, err, want)
		}
	}
	for _, expr := range []string{`{__name__=~"foo.*"}`, `sum foo`} {
		if _, err := metricNames(expr); err == nil {
			t.Errorf("metricNames(%s): no error", expr)
		}
	}
}

// labelValues is a query variable of the form label_values(<expr>, <label>).
var labelValues = regexp.MustCompile(`^\s*label_values\((.+),\s*(\w+)\s*\)\s*$`)

// checkDashboardQueries sends every panel query and query variable of
// every dashboard to prom: each must parse and evaluate, and every metric
// it names must exist on the running services. A variable's label must
// have at least one value.
func checkDashboardQueries(t *testing.T, ctx context.Context, prom promServer) {
	type use struct{ where, expr string }
	var uses []use
	for _, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			where := fmt.Sprintf("%s: variable %s", d.file, v.Name)
			m := labelValues.FindStringSubmatch(v.query())
			if m == nil {
				t.Errorf("%s: query %q is not label_values(<expr>, <label>)", where, v.query())
				continue
			}
			values, err := prom.query(fmt.Sprintf("count by (%s) (%s)", m[2], m[1]))
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			n := 0
			for _, s := range values {
				if s.Metric[m[2]] != "" {
					n++
				}
			}
			if n == 0 {
				t.Errorf("%s: no values of %s in %s", where, m[2], m[1])
			}
			uses = append(uses, use{where, m[1]})
		}
		for _, p := range d.allPanels() {
			for _, q := range p.Targets {
				uses = append(uses, use{fmt.Sprintf("%s: panel %q query %s", d.file, p.Title, q.RefID), q.Expr})
			}
		}
	}
	readers := map[string][]string{} // metric name -> the queries that read it
	for _, u := range uses {
		expr, err := promExpr(u.expr)
		if err != nil {
			t.Errorf("%s: %v", u.where, err)
			continue
		}
		if _, err := prom.query(expr); err != nil {
			t.Errorf("%s: %v", u.where, err)
			continue
		}
		formatted, err := prom.format(expr)
		if err != nil {
			t.Errorf("%s: %v", u.where, err)
			continue
		}
		names, err := metricNames(formatted)
		if err != nil || len(names) == 0 {
			t.Errorf("%s: no metric names found in %s (%v)", u.where, formatted, err)
		}
		for _, n := range names {
			readers[n] = append(readers[n], u.where)
		}
	}
	want := make([]string, 0, len(readers))
	for n := range readers {
		want = append(want, n)
	}
	slices.Sort(want)
	missing := waitForNames(ctx, prom, want, 10*time.Second)
	for _, n := range missing {
		t.Errorf("no service exports %s, read by %s", n, strings.Join(readers[n], "; "))
	}
	if len(missing) > 0 {
		names, _ := prom.names()
		t.Logf("the services export: %s", strings.Join(names, " "))
	}
	t.Logf("%d queries read %d metrics", len(uses), len(want))
}
