package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/collector/privacyapi"
	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/testenv"
	"github.com/consentflow/consentflow/sink/chwriter"
)

// needTool returns the path of a program the test runs (from Debian's
// prometheus package, which scripts/deps.sh installs), skipping without it
// unless CI=true.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := name + " is not installed (scripts/deps.sh up installs Debian's prometheus package)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// TestAlertRules checks the shipped Prometheus config and alert rules, and
// runs the alerts' unit tests (deployments/prometheus/alerts_test.yml).
func TestAlertRules(t *testing.T) {
	promtool := needTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "config", "../deployments/prometheus/prometheus.yml"},
		{"check", "rules", "../deployments/prometheus/alerts.yml"},
		{"test", "rules", "../deployments/prometheus/alerts_test.yml"},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// alertMetrics lists the metric names the shipped alert rules read.
func alertMetrics(t *testing.T) []string {
	t.Helper()
	rules, err := os.ReadFile("../deployments/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Names are written out, or listed in a __name__=~"a|b" matcher.
	name := regexp.MustCompile(`\b(up|(collector|enricher|sink|privacy)_[a-z0-9_]+)\b`)
	var names []string
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.Contains(line, "runbook:") || strings.Contains(line, "description:") || strings.Contains(line, "summary:") {
			continue
		}
		names = append(names, name.FindAllString(line, -1)...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// scrapedStack starts the four services as their mains wire them (each
// with its admin server), sends one batch through them, and runs the real
// Prometheus server with the shipped scrape config and alert rules, its
// targets swapped for the services', scraping every second. It returns
// once every target is up and the batch's rows are loaded and scraped, so
// the metrics a healthy pipeline exports have their series.
func scrapedStack(t *testing.T, ctx context.Context) promServer {
	t.Helper()
	server := needTool(t, "prometheus")
	rc := newRunConfigs(t, "prom")
	run := rc.run
	ccfg, ecfg, scfg, xcfg := rc.ccfg, rc.ecfg, rc.scfg, rc.xcfg
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The demo source's events are kept for analytics without a consent
	// record, so the batch below reaches ClickHouse, and the default-grant
	// counter (one series per configured source) exists.
	ecfg.Consent.Defaults = map[string][]string{"demo": {"analytics"}}

	// Each service with its admin server, as its main wires it.
	targets := map[string]string{} // the shipped target -> this test's
	serve := func(target, service string, build func(prometheus.Registerer) (obs.Component, error), check func(obs.Component) obs.Check) obs.Component {
		reg := obs.NewRegistry()
		c := startOn(t, ctx, reg, build)
		admin := obs.NewAdmin(config.Admin{Listen: "127.0.0.1:0"}, reg, log, map[string]obs.Check{"deps": check(c)})
		reg.MustRegister(admin.ReadinessGauge(service))
		if err := admin.Start(ctx); err != nil {
			t.Fatal(err)
		}
		admin.MarkStarted()
		t.Cleanup(func() { _ = admin.Shutdown(context.Background()) })
		targets[target] = admin.Addr()
		return c
	}
	serve("sink:9103", "sink", func(reg prometheus.Registerer) (obs.Component, error) { return chwriter.New(scfg, reg, log) },
		func(c obs.Component) obs.Check { return c.(*chwriter.Writer).Ready })
	serve("sink-intl:9104", "sink", func(reg prometheus.Registerer) (obs.Component, error) { return chwriter.New(xcfg, reg, log) },
		func(c obs.Component) obs.Check { return c.(*chwriter.Writer).Ready })
	serve("enricher:9102", "enricher", func(reg prometheus.Registerer) (obs.Component, error) { return pipeline.New(ecfg, reg, log) },
		func(c obs.Component) obs.Check { return c.(*pipeline.Pipeline).Ready })
	// The collector with its privacy API (off: no operators), whose
	// handlers' counters the dashboards read, on one registry as main
	// wires them.
	var collector *ingest.Server
	serve("collector:9101", "collector", func(reg prometheus.Registerer) (obs.Component, error) {
		srv, err := ingest.New(ccfg, reg, log)
		if err != nil {
			return nil, err
		}
		api, err := privacyapi.NewAPI(ccfg, privacyapi.Deps{Produce: srv.Produce, Consent: srv.ConsentStore(), WaitConsent: srv.WaitConsent}, reg, log)
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return nil, err
		}
		collector = srv
		return obs.Sequence(srv, api), nil
	}, func(obs.Component) obs.Check { return collector.Ready })
	// One unknown route and one batch, so the request, produce and fetch
	// counters have their series.
	if resp, err := http.Get("http://" + collector.Addr() + "/v1/nothing-here"); err == nil {
		resp.Body.Close()
	}
	if resp := post(t, "http://"+collector.Addr()+"/v1/batch", map[string]any{"batch": []map[string]any{
		{"type": "track", "event": "Signed Up", "userId": "prom-user", "messageId": run + "-1"},
		{"type": "page", "name": "Home", "anonymousId": "prom-anon", "messageId": run + "-2"},
	}}); !resp.Success {
		t.Fatalf("batch: %+v", resp)
	}

	// The shipped config with this test's targets, scraping every second.
	dir := t.TempDir()
	shipped, err := os.ReadFile("../deployments/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.ReplaceAll(string(shipped), "scrape_interval: 15s", "scrape_interval: 1s")
	for from, to := range targets {
		if !strings.Contains(cfg, `"`+from+`"`) {
			t.Fatalf("the shipped scrape config has no target %s", from)
		}
		cfg = strings.ReplaceAll(cfg, `"`+from+`"`, `"`+to+`"`)
	}
	rules, err := os.ReadFile("../deployments/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"prometheus.yml": cfg, "alerts.yml": string(rules)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(server, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	prom := promServer{base: "http://" + addr}

	// Every target up.
	var targetsAnswer struct {
		Data struct {
			ActiveTargets []struct {
				ScrapeURL string `json:"scrapeUrl"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
				Labels    struct {
					Job string `json:"job"`
				} `json:"labels"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	for {
		err := prom.get("/api/v1/targets", &targetsAnswer)
		up := 0
		for _, tg := range targetsAnswer.Data.ActiveTargets {
			if tg.Health == "up" {
				up++
			}
		}
		if err == nil && up == len(targets) && len(targetsAnswer.Data.ActiveTargets) == len(targets) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("targets %+v (%v)\n%s", targetsAnswer.Data.ActiveTargets, err, output.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The batch loaded, as Prometheus sees it.
	for {
		loaded, err := prom.query(`sink_rows_inserted_total{job="sink"} >= 2`)
		if err == nil && len(loaded) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Prometheus never saw the batch's 2 rows loaded (%v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return prom
}

// TestPrometheusScrapesTheServices runs the real Prometheus server with
// the shipped scrape config, pointed at the services this test starts
// (scrapedStack), and checks through its HTTP API that every metric the
// alert rules read is there, that every rule evaluates, and that every
// query of the Grafana dashboards evaluates and reads only metrics the
// services export.
func TestPrometheusScrapesTheServices(t *testing.T) {
	ctx := testenv.Context(t, 2*time.Minute)
	prom := scrapedStack(t, ctx)

	t.Run("AlertMetrics", func(t *testing.T) {
		want := alertMetrics(t)
		if len(want) < 10 { // the extraction itself broke
			t.Fatalf("found only %d metric names in the alert rules: %q", len(want), want)
		}
		if missing := waitForNames(ctx, prom, want, 30*time.Second); len(missing) > 0 {
			t.Fatalf("the alert rules read metrics no service exports: %q", missing)
		}
	})
	t.Run("Rules", func(t *testing.T) {
		var rulesAnswer struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name   string `json:"name"`
						Health string `json:"health"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := prom.get("/api/v1/rules", &rulesAnswer); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range rulesAnswer.Data.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health == "err" {
					t.Errorf("rule %s does not evaluate", r.Name)
				}
			}
		}
		if n != 12 {
			t.Errorf("Prometheus loaded %d rules, want the 12 of alerts.yml", n)
		}
	})
	t.Run("DashboardQueries", func(t *testing.T) { checkDashboardQueries(t, ctx, prom) })
}

// waitForNames waits up to patience (a few scrapes) for Prometheus to hold
// every metric name of want, and returns those it still lacks.
func waitForNames(ctx context.Context, prom promServer, want []string, patience time.Duration) []string {
	deadline := time.Now().Add(patience)
	for {
		names, err := prom.names()
		var missing []string
		for _, n := range want {
			if err != nil || !slices.Contains(names, n) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return missing
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// promServer is a running Prometheus server: the base URL of its HTTP API.
type promServer struct{ base string }

// get decodes the JSON answer of GET path (with its query string).
func (p promServer) get(path string, v any) error {
	resp, err := http.Get(p.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("GET %s: %s %s", path, resp.Status, body)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// names is every metric name Prometheus holds.
func (p promServer) names() ([]string, error) {
	var answer struct {
		Data []string `json:"data"`
	}
	err := p.get("/api/v1/label/__name__/values", &answer)
	return answer.Data, err
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

// query evaluates expr now; an error unless Prometheus answers success.
func (p promServer) query(expr string) ([]promSample, error) {
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	resp, err := http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return nil, fmt.Errorf("query %q: %s: %w", expr, resp.Status, err)
	}
	if answer.Status != "success" {
		return nil, fmt.Errorf("query %q: %s: %s", expr, resp.Status, answer.Error)
	}
	var samples []promSample
	if answer.Data.ResultType == "vector" {
		if err := json.Unmarshal(answer.Data.Result, &samples); err != nil {
			return nil, err
		}
	}
	return samples, nil
}

// format is Prometheus's own formatting of expr (/api/v1/format_query):
// comments gone, one spelling of each construct.
func (p promServer) format(expr string) (string, error) {
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   string `json:"data"`
	}
	resp, err := http.Get(p.base + "/api/v1/format_query?query=" + url.QueryEscape(expr))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return "", fmt.Errorf("format %q: %s: %w", expr, resp.Status, err)
	}
	if answer.Status != "success" {
		return "", fmt.Errorf("format %q: %s: %s", expr, resp.Status, answer.Error)
	}
	return answer.Data, nil
}
