package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/config/configtest"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/testenv"
)

const operatorToken = "0123456789abcdef0123456789abcdef-test-operator"

// testConfig is a collector with one operator, every listener on a free
// loopback port, and Kafka at an address where nothing answers: what these
// tests reach needs no broker.
func testConfig(t *testing.T, edit func(*ingest.Config)) ingest.Config {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "operator.token")
	if err := os.WriteFile(tokenFile, []byte(operatorToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := ingest.Default()
	cfg.Admin.Listen, cfg.HTTP.Listen, cfg.Privacy.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"}
	cfg.Sources = []ingest.Source{{Name: "demo", WriteKey: "demo-write-key"}}
	cfg.Privacy.Operators = []ingest.Operator{{Name: "dpo", TokenFile: tokenFile}}
	cfg.Privacy.Pseudonym.Key = "test-only-pseudonym-key-0123456789abcdef"
	if edit != nil {
		edit(&cfg)
	}
	if err := config.Check(&cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startParts builds the collector as main does and starts its admin server
// and the privacy API's listener (not the ingest server nor the privacy
// API's state, which would need Kafka).
func startParts(t *testing.T, cfg ingest.Config) (*collector, *testenv.LogBuffer) {
	t.Helper()
	logs := &testenv.LogBuffer{}
	c, err := build(cfg, obs.NewRegistry(), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = c.privacy.Shutdown(ctx)
		_ = c.privacyAPI.Shutdown(ctx)
		_ = c.admin.Shutdown(ctx)
		_ = c.ingest.Shutdown(ctx)
	})
	for _, s := range []interface{ Start(context.Context) error }{c.admin, c.privacy} {
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return c, logs
}

// call sends method url with the operator's token (if withToken) through
// client, and returns the status and body.
func call(t *testing.T, client *http.Client, method, url string, withToken bool) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{"userId":"u-1","reason":"user_request"}`))
	if err != nil {
		t.Fatal(err)
	}
	if withToken {
		req.Header.Set("Authorization", "Bearer "+operatorToken)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestPrivacyAPIOnItsOwnListener checks the privacy API answers on
// privacy.listen and not on the admin port, which keeps /metrics,
// /healthz and /readyz.
func TestPrivacyAPIOnItsOwnListener(t *testing.T) {
	c, _ := startParts(t, testConfig(t, nil))
	admin, privacy := "http://"+c.admin.Addr(), "http://"+c.privacy.Addr()
	client := &http.Client{}
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/v1/privacy/erasures"},
		{http.MethodGet, "/v1/privacy/erasures/some-request"},
		{http.MethodPost, "/v1/privacy/exports"},
	} {
		// With a valid token: the admin port does not know the route at all.
		if code, body, err := call(t, client, r.method, admin+r.path, true); err != nil || code != http.StatusNotFound {
			t.Errorf("%s %s on the admin port = %d %q (%v), want 404", r.method, r.path, code, body, err)
		}
		// Without one: the privacy API's own handler answers, and refuses.
		if code, body, err := call(t, client, r.method, privacy+r.path, false); err != nil || code != http.StatusUnauthorized {
			t.Errorf("%s %s on the privacy listener without a token = %d %q (%v), want the handler's 401", r.method, r.path, code, body, err)
		}
	}
	if code, _, err := call(t, client, http.MethodGet, admin+"/metrics", false); err != nil || code != http.StatusOK {
		t.Errorf("GET /metrics on the admin port = %d (%v), want 200", code, err)
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if code, _, err := call(t, client, http.MethodGet, privacy+path, false); err != nil || code != http.StatusNotFound {
			t.Errorf("GET %s on the privacy listener = %d (%v), want 404", path, code, err)
		}
	}
}

// TestPrivacyAPIMutualTLS checks that with privacy.tls and a client CA the
// privacy API speaks TLS only, and only to clients with a certificate that
// CA signed.
func TestPrivacyAPIMutualTLS(t *testing.T) {
	f := testenv.NewTLSFiles(t)
	c, _ := startParts(t, testConfig(t, func(cfg *ingest.Config) {
		cfg.Privacy.TLS = config.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: f.CA}
	}))
	url := "https://" + c.privacy.Addr() + "/v1/privacy/erasures"
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: f.ClientConfig(t, true)}}
	if code, body, err := call(t, withCert, http.MethodPost, url, false); err != nil || code != http.StatusUnauthorized {
		t.Errorf("with a client certificate, without a token = %d %q (%v), want the handler's 401", code, body, err)
	}
	withoutCert := &http.Client{Transport: &http.Transport{TLSClientConfig: f.ClientConfig(t, false)}}
	if code, body, err := call(t, withoutCert, http.MethodPost, url, true); err == nil {
		t.Errorf("without a client certificate = %d %q, want the TLS handshake refused", code, body)
	}
	// A certificate another CA signed is refused too.
	other := testenv.NewTLSFiles(t)
	cfg := other.ClientConfig(t, true)
	cfg.RootCAs = f.ClientConfig(t, false).RootCAs
	if code, body, err := call(t, &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, http.MethodPost, url, true); err == nil {
		t.Errorf("with a certificate of another CA = %d %q, want the TLS handshake refused", code, body)
	}
	if code, body, err := call(t, &http.Client{}, http.MethodPost, "http://"+c.privacy.Addr()+"/v1/privacy/erasures", true); err == nil && code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS listener = %d %q, want no answer but Go's 400 for HTTP to HTTPS", code, body)
	}
}

// TestPrivacyAPIOffWithoutOperators checks nothing listens when no
// operator may call the API.
func TestPrivacyAPIOffWithoutOperators(t *testing.T) {
	c, _ := startParts(t, testConfig(t, func(cfg *ingest.Config) { cfg.Privacy.Operators = nil }))
	if addr := c.privacy.Addr(); addr != "" {
		t.Errorf("privacy API listens at %s with no operators", addr)
	}
}

// TestReadyzHidesKafkaError checks /readyz says only "not ready" while
// Kafka is unreachable, and the log says why.
func TestReadyzHidesKafkaError(t *testing.T) {
	c, logs := startParts(t, testConfig(t, nil))
	c.admin.MarkStarted()
	code, body, err := call(t, &http.Client{}, http.MethodGet, "http://"+c.admin.Addr()+"/readyz", false)
	if err != nil || code != http.StatusServiceUnavailable || body != "not ready\n" {
		t.Errorf("/readyz with Kafka unreachable = %d %q (%v), want 503 \"not ready\" and nothing more", code, body, err)
	}
	if !strings.Contains(logs.String(), "readiness check failing") || !strings.Contains(logs.String(), "check=kafka") {
		t.Errorf("the log does not say why the collector is not ready:\n%s", logs)
	}
}

// TestStartupRefusals checks the shipped config, overridden by the
// environment as main loads it, refuses to start with the privacy API
// on the network in plaintext, or a Kafka password sent in plaintext.
func TestStartupRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		key  string
	}{
		{"privacy API on every interface without TLS", map[string]string{"COLLECTOR_PRIVACY_LISTEN": ":9105"}, "privacy.listen"},
		{"SASL PLAIN without TLS", map[string]string{"COLLECTOR_KAFKA_SASL_MECHANISM": "PLAIN", "COLLECTOR_KAFKA_SASL_USERNAME": "collector",
			"COLLECTOR_KAFKA_SASL_PASSWORD": "kafka-password"}, "kafka.sasl.mechanism"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			configtest.ClearEnv(t, "COLLECTOR")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg := ingest.Default()
			err := config.Load("../configs/collector.yaml", "COLLECTOR", &cfg)
			if keys := configtest.FieldKeys(err); !slices.Equal(keys, []string{tc.key}) {
				t.Errorf("Load = %v (keys %q), want an error naming %s", err, keys, tc.key)
			}
		})
	}
}
