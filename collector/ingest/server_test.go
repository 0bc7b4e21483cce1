package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/consenttoken"
	"github.com/consentflow/consentflow/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testConfig(brokers []string) Config {
	cfg := Default()
	cfg.Kafka.Brokers = brokers
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.ProduceTimeout = 2 * time.Second
	cfg.HTTP.MaxRequestBytes = 4096
	cfg.HTTP.MaxEventBytes = 1024
	cfg.Sources = []Source{
		{Name: "web", WriteKey: "web-write-key"},
		{Name: "old-app", WriteKey: "old-app-write-key", Enabled: new(false)},
		{Name: "backend", WriteKey: "backend-write-key", Trust: TrustServer},
	}
	cfg.TrustedProxies = []string{"10.0.0.0/8"}
	cfg.ConsentTokens.Keys = []consenttoken.KeyConfig{{KeyID: testTokenKey.ID, Key: config.Secret(testTokenKey.Secret)}}
	return cfg
}

// testTokenKey signs the tests' consent tokens, as a backend would.
var testTokenKey = consenttoken.Key{ID: "ct-test", Secret: []byte("test-only-consent-token-key-0123456789abcdef")}

// newUnreachable builds a server whose Kafka does not exist: every request
// that gets as far as producing must fail.
func newUnreachable(t *testing.T) (*Server, *prometheus.Registry) {
	t.Helper()
	cfg := testConfig([]string{"127.0.0.1:1"})
	cfg.HTTP.ProduceTimeout = time.Second
	reg := prometheus.NewRegistry()
	s, err := New(cfg, reg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s, reg
}

func request(t *testing.T, s *Server, key string, body io.Reader, header map[string]string) (*httptest.ResponseRecorder, response) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/batch", body)
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.http.Handler.ServeHTTP(rec, req)
	var resp response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("response is not JSON: %q", rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	return rec, resp
}

const validEvent = `{"type":"track","event":"Viewed","anonymousId":"a-1"}`

func TestBatchRefusals(t *testing.T) {
	s, reg := newUnreachable(t)
	big := `{"batch":[` + strings.Repeat(validEvent+",", 100) + validEvent + `]}`
	cases := []struct {
		name    string
		key     string
		body    string
		code    int
		errPart string
	}{
		{"no write key", "", `{"batch":[]}`, 401, "missing write key"},
		{"unknown write key", "nope-nope-nope", `{"batch":[]}`, 401, "unknown write key"},
		{"disabled source", "old-app-write-key", `{"batch":[` + validEvent + `]}`, 403, "disabled"},
		{"malformed JSON", "web-write-key", `{"batch":[`, 400, "invalid JSON"},
		{"batch missing", "web-write-key", `{"events":[]}`, 400, "batch: is required"},
		{"body too large", "web-write-key", big, 413, "exceeds 4096 bytes"},
		{"no valid event", "web-write-key", `{"batch":[{"type":"track"},{"type":"nope","userId":"u"}]}`, 400, "no valid event"},
		{"kafka unreachable", "web-write-key", `{"batch":[` + validEvent + `]}`, 503, "retry later"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, resp := request(t, s, tc.key, strings.NewReader(tc.body), nil)
			if rec.Code != tc.code || resp.Success || !strings.Contains(resp.Error, tc.errPart) {
				t.Fatalf("got %d %+v, want %d with error containing %q", rec.Code, resp, tc.code, tc.errPart)
			}
			if tc.code == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	if got := testutil.ToFloat64(s.metrics.rejected.WithLabelValues(reasonProduceFailed)); got != 1 {
		t.Errorf("produce_failed events metric = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.metrics.rejected.WithLabelValues(reasonInvalid)); got != 2 {
		t.Errorf("invalid events metric = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "collector_http_requests_total"); err != nil || n != 5 { // 401, 403, 400, 413, 503
		t.Errorf("request series = %d (%v), want one per distinct code and route", n, err)
	}
}

func TestRejectionsNameIndexAndField(t *testing.T) {
	s, _ := newUnreachable(t)
	body := `{"batch":[{"type":"track","anonymousId":"a"},{"type":"page","userId":42},{"type":"alias","userId":"u"},` +
		`{"type":"page","anonymousId":"a","timestamp":"yesterday"},{"type":"page","anonymousId":"a","properties":"x"},` +
		`{"type":"page","anonymousId":"a","padding":"` + strings.Repeat("x", 1100) + `"}]}`
	rec, resp := request(t, s, "web-write-key", strings.NewReader(body), nil)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("code %d", rec.Code)
	}
	want := []string{"event: is required", "userId: must be a string", "previousId: is required", "timestamp: must be an ISO 8601", "properties: must be an object", "more than the limit of 1024"}
	if len(resp.Rejected) != len(want) {
		t.Fatalf("rejected %+v", resp.Rejected)
	}
	for i, w := range want {
		if resp.Rejected[i].Index != i || !strings.Contains(resp.Rejected[i].Error, w) {
			t.Errorf("rejected[%d] = %+v, want index %d and %q", i, resp.Rejected[i], i, w)
		}
	}
}

func TestGzipBombRefused(t *testing.T) {
	s, _ := newUnreachable(t)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(`{"batch":[` + strings.Repeat(" ", 1<<20) + `]}`))
	_ = zw.Close()
	if buf.Len() > 4096 {
		t.Fatalf("test bomb is %d bytes compressed; must fit the limit to test decompressed size", buf.Len())
	}
	rec, resp := request(t, s, "web-write-key", &buf, map[string]string{"Content-Encoding": "gzip"})
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d %+v, want 413", rec.Code, resp)
	}
}

func TestClientIP(t *testing.T) {
	s, _ := newUnreachable(t)
	cases := []struct{ remote, xff, want string }{
		{"203.0.113.9:5000", "", "203.0.113.9"},
		{"203.0.113.9:5000", "1.2.3.4", "203.0.113.9"},             // untrusted peer: header ignored
		{"10.0.0.2:5000", "1.2.3.4", "1.2.3.4"},                    // trusted proxy
		{"10.0.0.2:5000", "6.6.6.6, 1.2.3.4, 10.0.0.7", "1.2.3.4"}, // right-most untrusted hop; 6.6.6.6 is client-written
		{"10.0.0.2:5000", "garbage", "10.0.0.2"},                   // unparsable hop: stop at the proxy
		{"[::ffff:203.0.113.9]:5000", "", "203.0.113.9"},           // mapped IPv4
		{"[2001:db8::1]:5000", "", "2001:db8::1"},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(http.MethodPost, "/v1/batch", nil)
		req.RemoteAddr = tc.remote
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := s.clientIP(req); got != tc.want {
			t.Errorf("remote %s xff %q: got %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func TestMetricsLint(t *testing.T) {
	_, reg := newUnreachable(t)
	testenv.LintMetrics(t, reg)
}

// TestBrokerDownAnswers503 checks that with Kafka unreachable the answer is
// 503, never 200, and comes once the produce deadline has passed rather than
// whenever the client gives up.
func TestBrokerDownAnswers503(t *testing.T) {
	s, _ := newUnreachable(t)
	start := time.Now()
	rec, resp := request(t, s, "web-write-key", strings.NewReader(`{"batch":[`+validEvent+`]}`), nil)
	elapsed := time.Since(start)
	if rec.Code != http.StatusServiceUnavailable || resp.Success || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d %+v, want 503 with Retry-After", rec.Code, resp)
	}
	if limit := s.cfg.HTTP.ProduceTimeout + 5*time.Second; elapsed > limit {
		t.Errorf("answered after %v; the produce deadline is %v", elapsed, s.cfg.HTTP.ProduceTimeout)
	}
}

// TestFullBufferAnswers503AtOnce checks backpressure: a request that would
// overflow the producer's buffer is refused before anything is produced.
func TestFullBufferAnswers503AtOnce(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:1"})
	cfg.HTTP.MaxBufferedRecords = 2
	s, err := New(cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	s.reserved.Store(1) // another request's event is waiting for Kafka
	rec, resp := request(t, s, "web-write-key", strings.NewReader(`{"batch":[`+validEvent+`,`+validEvent+`]}`), nil)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Error, "overloaded") {
		t.Fatalf("got %d %+v, want 503 overloaded", rec.Code, resp)
	}
	if n := s.client.BufferedProduceRecords(); n != 0 {
		t.Errorf("%d records were buffered for a refused request", n)
	}
	if got := testutil.ToFloat64(s.metrics.rejected.WithLabelValues(reasonOverloaded)); got != 2 {
		t.Errorf("overloaded events metric = %v, want 2", got)
	}
}

// TestSucceededIsWriteJSON: the canned answer to a plain success is what
// writeJSON would write.
func TestSucceededIsWriteJSON(t *testing.T) {
	want := httptest.NewRecorder()
	writeJSON(want, http.StatusOK, response{Success: true})
	got := httptest.NewRecorder()
	result{code: http.StatusOK, resp: response{Success: true}}.write(got)
	if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
		t.Fatalf("got %d %q %v, writeJSON %d %q %v", got.Code, got.Body, got.Header(), want.Code, want.Body, want.Header())
	}
}
