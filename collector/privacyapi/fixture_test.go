package privacyapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/keyring"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var (
	dpoToken     = strings.Repeat("d", 40) + "-dpo-token"
	supportToken = strings.Repeat("s", 40) + "-support-token"
)

// testConfig is a collector on brokers with one client source, its
// listeners on free loopback ports, and the privacy API off.
func testConfig(brokers []string) ingest.Config {
	cfg := ingest.Default()
	cfg.Kafka.Brokers = brokers
	cfg.HTTP.Listen, cfg.Privacy.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.HTTP.ProduceTimeout = 2 * time.Second
	cfg.Sources = []ingest.Source{{Name: "web", WriteKey: "web-write-key"}}
	return cfg
}

// privacyConfig switches the privacy API on for two operators.
func privacyConfig(cfg *ingest.Config) {
	cfg.Privacy.Operators = []ingest.Operator{
		{Name: "dpo", Token: config.Secret(dpoToken)},
		{Name: "support", Token: config.Secret(supportToken)},
	}
	cfg.Privacy.Pseudonym = keyring.Config{KeyID: "t1", Key: "test-key-0123456789-0123456789-0123456789"}
}

// newCollector builds the ingest server and the privacy API on it as the
// collector's main wires them, neither started.
func newCollector(t *testing.T, cfg ingest.Config, reg prometheus.Registerer, log *slog.Logger) (*ingest.Server, *API) {
	t.Helper()
	srv, err := ingest.New(cfg, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	api, err := NewAPI(cfg, Deps{Produce: srv.Produce, Consent: srv.ConsentStore(), WaitConsent: srv.WaitConsent}, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Shutdown(context.Background()) })
	return srv, api
}

// privacyFixture is a collector on its own topics of the real broker, with
// the privacy API on its own listener.
type privacyFixture struct {
	srv     *ingest.Server
	api     *API
	cfg     ingest.Config
	keys    *policy.Keyring // the in-region keys of privacyConfig
	base    string          // base URL of the public ingest server
	admin   string          // base URL of the privacy API's listener
	brokers []string
	adm     *kadm.Client
	reg     *prometheus.Registry
	logs    *testenv.LogBuffer
}

func newPrivacyFixture(t *testing.T) *privacyFixture {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	cfg := testConfig(brokers)
	cfg.Topics.Raw.Name = testenv.Name(t, "raw")
	cfg.Topics.Consent.Name = testenv.Name(t, "consent")
	cfg.Topics.Erasures.Name = testenv.Name(t, "erasures")
	cfg.Topics.ErasureRequests.Name = testenv.Name(t, "erasure-requests")
	cfg.Topics.Receipts.Name = testenv.Name(t, "receipts")
	cfg.Topics.Identities.Name = testenv.Name(t, "identities")
	privacyConfig(&cfg)
	testenv.DeleteTopicsAfter(t, brokers, cfg.Topics.Raw.Name, cfg.Topics.Consent.Name, cfg.Topics.Erasures.Name, cfg.Topics.ErasureRequests.Name,
		cfg.Topics.Receipts.Name, cfg.Topics.Identities.Name)
	logs := &testenv.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	reg := prometheus.NewRegistry()
	srv, api := newCollector(t, cfg, reg, log)
	ps, err := New(cfg.Privacy, api.Routes(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Shutdown(context.Background()) })
	ctx := testenv.Context(t, 30*time.Second)
	for _, c := range []interface{ Start(context.Context) error }{srv, api, ps} {
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	keys, err := cfg.Privacy.Pseudonym.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	return &privacyFixture{srv: srv, api: api, cfg: cfg, keys: keys, base: "http://" + srv.Addr(), admin: "http://" + ps.Addr(),
		brokers: brokers, adm: kadm.NewClient(cl), reg: reg, logs: logs}
}

// stored is how many records a topic holds.
func (f *privacyFixture) stored(t *testing.T, topic string) int64 {
	t.Helper()
	ends, err := f.adm.ListEndOffsets(testenv.Context(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// call is a request to the public ingest server.
type call struct {
	method, path string
	key          string // HTTP Basic username
	header       map[string]string
	body         []byte
}

type reply struct {
	code int
	body []byte
	resp response
}

// do sends c to the public ingest server.
func (f *privacyFixture) do(t *testing.T, c call) reply {
	t.Helper()
	req, err := http.NewRequest(c.method, f.base+c.path, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.key != "" {
		req.SetBasicAuth(c.key, "")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, body: body}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &r.resp); err != nil {
			t.Fatalf("JSON response does not decode: %q", body)
		}
	}
	return r
}

// erase posts an erasure request to the privacy API.
func (f *privacyFixture) erase(t *testing.T, method, auth string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.admin+"/v1/privacy/erasures", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}
