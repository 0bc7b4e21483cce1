package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/testenv"
)

// TestBinaries builds the three commands, runs them as `make run` does
// (shipped configs, overrides by environment, dev_mode on), sends a batch
// through, and stops them with SIGTERM. It covers what the in-process test
// cannot: the wiring in each main.go, the dev-mode warning included.
func TestBinaries(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	chAddr := testenv.ClickHouseAddr(t)
	ctx := testenv.Context(t, 3*time.Minute)
	bin := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "../collector", "../enricher", "../sink")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	run := testenv.Name(t, "bin")
	testenv.DeleteTopicsAfter(t, brokers, "events.raw."+run, "events.clean."+run, "events.dlq.cn."+run, "events.dlq.raw."+run,
		"privacy.consent."+run, "privacy.erasures."+run, "events.export."+run,
		"privacy.receipts."+run, "privacy.identities."+run, "privacy.erasures.cn."+run, "privacy.erasures.intl."+run,
		"privacy.erasure-requests."+run)
	database := "analytics_" + run
	ports := freePorts(t, 4)
	common := []string{
		"KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"TOPICS_RAW_NAME=events.raw." + run,
		"TOPICS_CLEAN_NAME=events.clean." + run,
		"TOPICS_CONSENT_NAME=privacy.consent." + run,
		"TOPICS_RECEIPTS_NAME=privacy.receipts." + run,
		"TOPICS_ERASURE_REQUESTS_NAME=privacy.erasure-requests." + run,
		"LOG_FORMAT=text",
		// The demo write keys and development keys need dev mode.
		"DEV_MODE=true",
	}
	env := func(prefix string, extra ...string) []string {
		out := os.Environ()
		for _, kv := range append(common, extra...) {
			out = append(out, prefix+"_"+kv)
		}
		return out
	}
	// The sink logs in as a user that may use its database only.
	chUser := testenv.ClickHouseSinkUser(t, chAddr, database)
	sink := startBinary(t, ctx, bin+"/sink", "../configs/sink.yaml", env("SINK",
		"ADMIN_LISTEN="+ports[0], "GROUP_ID=sink-"+run, "DATABASE="+database, "CLICKHOUSE_ADDR="+chAddr,
		"CLICKHOUSE_USERNAME="+chUser.Name, "CLICKHOUSE_PASSWORD="+chUser.Password, "BATCH_MAX_WAIT=200ms", "TOPICS_DLQ_NAME=events.dlq.cn."+run,
		"TOPICS_ERASURES_NAME=privacy.erasures.cn."+run))
	enricher := startBinary(t, ctx, bin+"/enricher", "../configs/enricher.yaml", env("ENRICHER",
		"ADMIN_LISTEN="+ports[1], "GROUP_ID=enricher-"+run, "TRANSACTIONAL_ID=enricher-"+run, "TOPICS_DLQ_NAME=events.dlq.raw."+run,
		"TOPICS_ERASURES_NAME=privacy.erasures."+run, "EXPORT_TOPIC_NAME=events.export."+run,
		"TOPICS_IDENTITIES_NAME=privacy.identities."+run, "TOPICS_ERASURE_NOTICES_NAME=privacy.erasures.cn."+run,
		"EXPORT_ERASURE_NOTICES_NAME=privacy.erasures.intl."+run,
		"PSEUDONYM_KEY_FILE=../configs/dev-pseudonym.key", "EXPORT_PSEUDONYM_KEY_FILE=../configs/dev-export.key"))
	collector := startBinary(t, ctx, bin+"/collector", "../configs/collector.yaml", env("COLLECTOR",
		"ADMIN_LISTEN="+ports[2], "HTTP_LISTEN="+ports[3]))

	conn := testenv.ClickHouseDB(t, chAddr, database)

	for _, admin := range ports[:3] {
		waitReady(t, ctx, "http://"+admin+"/readyz")
	}
	consentedAt := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for _, subject := range []string{"bin-user", "bin-anon"} {
		consent := map[string]any{"userId": subject, "purposes": map[string]bool{"analytics": true}, "timestamp": consentedAt}
		if subject == "bin-anon" {
			consent = map[string]any{"anonymousId": subject, "purposes": map[string]bool{"analytics": true}, "timestamp": consentedAt}
		}
		if resp := postAs(t, serverKey, "http://"+ports[3]+"/v1/consent", consent); !resp.Success {
			t.Fatalf("consent: %+v", resp)
		}
	}
	resp := post(t, "http://"+ports[3]+"/v1/batch", map[string]any{"batch": []map[string]any{
		{"type": "track", "event": "Signed Up", "userId": "bin-user", "messageId": run + "-1"},
		{"type": "page", "name": "Home", "anonymousId": "bin-anon", "messageId": run + "-2"},
	}})
	if !resp.Success {
		t.Fatalf("batch: %+v", resp)
	}
	for {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM "+database+".events").Scan(&n)
		if err == nil && n == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("rows in ClickHouse: %d (%v); logs:\n%s\n%s\n%s", n, err, sink.log(), enricher.log(), collector.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	metrics := httpGet(t, "http://"+ports[2]+"/metrics")
	// Two consent updates and two events.
	if !strings.Contains(metrics, `collector_events_accepted_total 4`) || !strings.Contains(metrics, "collector_connects_total") {
		t.Errorf("collector metrics lack accepted events or kprom client metrics")
	}
	if !strings.Contains(httpGet(t, "http://"+ports[0]+"/metrics"), "sink_rows_inserted_total 2") {
		t.Errorf("sink metrics do not count the 2 rows")
	}

	// SIGTERM: each stops cleanly, in the reverse order of start.
	for _, p := range []*process{collector, enricher, sink} {
		p.stop(t)
		// Each says at start-up that it runs in dev mode.
		if out := p.output.String(); !strings.Contains(out, `level=WARN msg="DEV MODE: `) || !strings.Contains(out, "must not run in production") {
			t.Errorf("%s did not warn that it runs in dev mode\n%s", p.name, p.log())
		}
	}
	// The collector names where it holds the demo write keys, never the keys.
	if out := collector.output.String(); !strings.Contains(out, "sources[0].write_key") || strings.Contains(out, "demo-write-key") {
		t.Errorf("collector's dev-mode warning: want sources[0].write_key named and no key shown\n%s", collector.log())
	}
}

// TestBinaryRejectsBadConfig checks a bad value fails start-up with exit code
// 2 and an error naming the key, before anything is dialled: among them the
// privacy API on the network without TLS, and a Kafka password in clear.
func TestBinaryRejectsBadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds a binary")
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../collector").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		env  []string
		keys []string
	}{
		{[]string{"COLLECTOR_HTTP_PRODUCE_TIMEOUT=0s", "COLLECTOR_KAFKA_SASL_MECHANISM=GSSAPI"}, []string{"http.produce_timeout", "kafka.sasl.mechanism"}},
		{[]string{"COLLECTOR_PRIVACY_LISTEN=0.0.0.0:9105"}, []string{"privacy.listen", "privacy.tls.cert_file"}},
		{[]string{"COLLECTOR_KAFKA_SASL_MECHANISM=PLAIN", "COLLECTOR_KAFKA_SASL_USERNAME=collector", "COLLECTOR_KAFKA_SASL_PASSWORD=kafka-password"},
			[]string{"kafka.sasl.mechanism", "kafka.sasl.allow_plaintext"}},
	} {
		cmd := exec.Command(bin+"/collector", "--config", "../configs/collector.yaml")
		cmd.Env = append(os.Environ(), tc.env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 2 {
			t.Errorf("%v: exit: %v, want code 2; stderr: %s", tc.env, err, stderr.String())
			continue
		}
		for _, want := range tc.keys {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%v: stderr does not name %s: %s", tc.env, want, stderr.String())
			}
		}
	}

	// A valid config with the repository's demo write keys and no dev_mode
	// (the image's default, for one) fails the same way.
	cmd := exec.Command(bin+"/collector", "--config", "../configs/collector.yaml")
	cmd.Env = append(os.Environ(), "COLLECTOR_DEV_MODE=false")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 2 {
		t.Fatalf("exit with the demo write keys: %v, want code 2; stderr: %s", err, stderr.String())
	}
	for _, want := range []string{"sources[0].write_key: is the repository's demo write key", "sources[1].write_key", "dev_mode: true"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not say %q: %s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "demo-write-key") {
		t.Errorf("stderr shows a write key: %s", stderr.String())
	}
}

type process struct {
	name   string
	cmd    *exec.Cmd
	output *bytes.Buffer
	done   chan error
}

func (p *process) log() string { return p.name + ":\n" + p.output.String() }

func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: signal: %v", p.name, err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM\n%s", p.name, err, p.log())
		}
		if out := p.output.String(); !strings.Contains(out, "msg=stopped") && !strings.Contains(out, `"msg":"stopped"`) {
			t.Errorf("%s did not log a clean stop\n%s", p.name, p.log())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("%s still running 20s after SIGTERM", p.name)
	}
}

func startBinary(t *testing.T, ctx context.Context, path, config string, env []string) *process {
	t.Helper()
	p := &process{name: filepath.Base(path), output: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.CommandContext(ctx, path, "--config", config)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
		}
	})
	return p
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		defer ln.Close()
	}
	return addrs
}

func waitReady(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never ready", url)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return string(b)
}
