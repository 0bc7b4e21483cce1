package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consenttoken"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
)

// apiFixture is a collector on its own topics of the real broker.
type apiFixture struct {
	s       *Server
	base    string
	brokers []string
	adm     *kadm.Client
}

func newAPIFixture(t *testing.T, edit func(*Config)) *apiFixture {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	cfg := testConfig(brokers)
	cfg.HTTP.MaxRequestBytes = 64 << 10
	cfg.HTTP.MaxEventBytes = 8 << 10
	cfg.HTTP.MaxJSONDepth = 8
	cfg.HTTP.MaxJSONKeys = 50
	cfg.Topics.Raw.Name = testenv.Name(t, "raw")
	cfg.Topics.Consent.Name = testenv.Name(t, "consent")
	cfg.Sources = append(cfg.Sources,
		Source{Name: "limited", WriteKey: "limited-write-key", RateLimit: RateLimit{EventsPerSecond: 0.001, Burst: 3}})
	cfg.CORS.AllowedOrigins = []string{"https://shop.example"}
	cfg.Redirect.AllowedHosts = []string{"shop.example", "*.cdn.example"}
	if edit != nil {
		edit(&cfg)
	}
	testenv.DeleteTopicsAfter(t, brokers, cfg.Topics.Raw.Name, cfg.Topics.Consent.Name)
	s, err := New(cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	if err := s.Start(testenv.Context(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &apiFixture{s: s, base: "http://" + s.Addr(), brokers: brokers, adm: kadm.NewClient(cl)}
}

// stored is how many records a topic holds.
func (f *apiFixture) stored(t *testing.T, topic string) int64 {
	t.Helper()
	ends, err := f.adm.ListEndOffsets(testenv.Context(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// last returns the n most recently written envelopes of the raw topic.
func (f *apiFixture) last(t *testing.T, n int) []event.Envelope {
	t.Helper()
	all := testenv.ReadAll(t, testenv.Context(t, 30*time.Second), f.brokers, f.s.cfg.Topics.Raw.Name)
	var envs []event.Envelope
	for _, r := range all {
		env, err := event.DecodeEnvelope(r.Value)
		if err != nil {
			t.Fatalf("raw topic holds an invalid envelope: %v", err)
		}
		// Kafka's timestamp is the receipt's, at Kafka's millisecond.
		if want := env.ReceivedAt.Truncate(time.Millisecond); !r.Timestamp.Equal(want) {
			t.Fatalf("record timestamp %v, want receivedAt %v", r.Timestamp, want)
		}
		envs = append(envs, env)
	}
	// Records of one request may land in several partitions: order by
	// receipt, then keep the newest.
	if len(envs) < n {
		t.Fatalf("raw topic holds %d envelopes, want at least %d", len(envs), n)
	}
	var newest []event.Envelope
	latest := time.Time{}
	for _, e := range envs {
		if e.ReceivedAt.After(latest) {
			latest = e.ReceivedAt
		}
	}
	for _, e := range envs {
		if e.ReceivedAt.Equal(latest) {
			newest = append(newest, e)
		}
	}
	if len(newest) != n {
		t.Fatalf("the last request stored %d envelopes, want %d", len(newest), n)
	}
	return newest
}

type call struct {
	method, path string
	key          string // HTTP Basic username
	header       map[string]string
	body         []byte
}

type reply struct {
	code   int
	header http.Header
	body   []byte
	resp   response
}

func (f *apiFixture) do(t *testing.T, c call) reply {
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
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header, body: body}
	if c.method != http.MethodHead && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &r.resp); err != nil {
			t.Fatalf("JSON response does not decode: %q", body)
		}
	}
	return r
}

const (
	trackEvent = `{"type":"track","event":"Viewed","anonymousId":"anon-1"}`
	pageEvent  = `{"type":"page","name":"Home","userId":"user-1"}`
)

func batchOf(events ...string) []byte {
	return []byte(`{"batch":[` + strings.Join(events, ",") + `]}`)
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestAPI runs every route, limit and error path against a real broker and
// checks the status, the body, and what reached Kafka: exactly the accepted
// events, and nothing for a refused request.
func TestAPI(t *testing.T) {
	f := newAPIFixture(t, nil)
	deep := strings.Repeat(`{"a":`, 9) + `1` + strings.Repeat(`}`, 9)
	var manyKeys []string
	for i := range 60 {
		manyKeys = append(manyKeys, `"k`+string(rune('a'+i%26))+strings.Repeat("x", i/26)+`":1`)
	}
	bomb := gzipped([]byte(`{"batch":[` + strings.Repeat(" ", 1<<20) + `]}`))
	pixel := "/v1/pixel?data=" + b64(`{"writeKey":"web-write-key","event":"Email Opened","userId":"user-9"}`)
	click := b64(`{"writeKey":"web-write-key","event":"Link Clicked","anonymousId":"anon-9"}`)

	cases := []struct {
		name    string
		call    call
		code    int
		errPart string // in the error message, or a rejection
		stored  int64  // records added to the raw topic
		check   func(t *testing.T, r reply)
	}{
		// /v1/batch
		{name: "batch", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(trackEvent, pageEvent)}, code: 200, stored: 2},
		{name: "batch with one bad event", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(trackEvent, `{"type":"track","anonymousId":"a"}`)},
			code: 200, errPart: "event: is required for track", stored: 1, check: func(t *testing.T, r reply) {
				if len(r.resp.Rejected) != 1 || r.resp.Rejected[0].Index != 1 || !r.resp.Success {
					t.Errorf("rejected = %+v", r.resp.Rejected)
				}
			}},
		{name: "batch of bad events", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(`{"type":"nope","userId":"u"}`, `{"type":"page"}`)},
			code: 400, errPart: "no valid event"},
		{name: "empty batch", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: []byte(`{"batch":[]}`)}, code: 400, errPart: "holds no event"},
		{name: "batch missing", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: []byte(`{"events":[]}`)}, code: 400, errPart: "batch: is required"},
		{name: "batch not an array", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: []byte(`{"batch":{}}`)}, code: 400, errPart: "batch: must be an array"},
		{name: "malformed JSON", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: []byte(`{"batch":[`)}, code: 400, errPart: "invalid JSON"},
		{name: "bad batch sentAt", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: []byte(`{"sentAt":"today","batch":[` + trackEvent + `]}`)}, code: 400, errPart: "sentAt"},
		{name: "no write key", call: call{method: "POST", path: "/v1/batch", body: batchOf(trackEvent)}, code: 401, errPart: "missing write key"},
		{name: "unknown write key", call: call{method: "POST", path: "/v1/batch", key: "not-a-key", body: batchOf(trackEvent)}, code: 401, errPart: "unknown write key"},
		{name: "disabled source", call: call{method: "POST", path: "/v1/batch", key: "old-app-write-key", body: batchOf(trackEvent)}, code: 403, errPart: "disabled"},
		{name: "write key in the body", call: call{method: "POST", path: "/v1/batch", body: []byte(`{"writeKey":"web-write-key","batch":[` + trackEvent + `]}`)}, code: 200, stored: 1},
		{name: "gzip body", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", header: map[string]string{"Content-Encoding": "gzip"}, body: gzipped(batchOf(trackEvent))}, code: 200, stored: 1},
		{name: "broken gzip", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", header: map[string]string{"Content-Encoding": "gzip"}, body: []byte("not gzip")}, code: 400, errPart: "gzip"},
		{name: "gzip bomb", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", header: map[string]string{"Content-Encoding": "gzip"}, body: bomb}, code: 413, errPart: "exceeds"},
		{name: "body too large", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(`{"type":"page","userId":"u","name":"` + strings.Repeat("x", 70<<10) + `"}`)}, code: 413, errPart: "exceeds 65536 bytes"},
		{name: "event too large", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(trackEvent, `{"type":"page","userId":"u","name":"`+strings.Repeat("x", 9<<10)+`"}`)},
			code: 200, errPart: "more than the limit of 8192", stored: 1},
		{name: "nesting too deep", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(`{"type":"page","userId":"u","properties":` + deep + `}`)}, code: 400, errPart: "nests deeper than 8"},
		{name: "too many keys", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(`{"type":"page","userId":"u","properties":{` + strings.Join(manyKeys, ",") + `}}`)}, code: 400, errPart: "more than 50 keys"},
		{name: "invalid UTF-8", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(`{"type":"page","userId":"u","name":"` + "\xff\xfe" + `"}`)}, code: 400, errPart: "not valid UTF-8"},
		{name: "rate limited source within burst", call: call{method: "POST", path: "/v1/batch", key: "limited-write-key", body: batchOf(trackEvent, trackEvent)}, code: 200, stored: 2},
		{name: "rate limited source over the rate", call: call{method: "POST", path: "/v1/batch", key: "limited-write-key", body: batchOf(trackEvent, trackEvent)}, code: 429, errPart: "rate limit",
			check: func(t *testing.T, r reply) {
				if r.header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			}},
		{name: "more events than the burst", call: call{method: "POST", path: "/v1/batch", key: "limited-write-key", body: batchOf(trackEvent, trackEvent, trackEvent, trackEvent)}, code: 413, errPart: "more than source",
			check: func(t *testing.T, r reply) {
				if r.header.Get("Retry-After") != "" {
					t.Error("a request that can never pass is told to retry")
				}
			}},
		{name: "batch context over the event limit", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: []byte(`{"context":{"pad":"` + strings.Repeat("x", 9<<10) + `"},"batch":[` + trackEvent + `]}`)},
			code: 400, errPart: "context: is"},
		{name: "batch context too deep", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: []byte(`{"context":` + deep + `,"batch":[` + trackEvent + `]}`)},
			code: 400, errPart: "context: (body): nests deeper"},
		{name: "event too large with the batch context", call: call{method: "POST", path: "/v1/batch", key: "web-write-key",
			body: []byte(`{"context":{"pad":"` + strings.Repeat("x", 5<<10) + `"},"batch":[{"type":"page","userId":"u","name":"` + strings.Repeat("y", 5<<10) + `"}]}`)},
			code: 400, errPart: "with the batch context"},
		{name: "userId too long", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(`{"type":"page","userId":"` + strings.Repeat("u", 1100) + `"}`)},
			code: 400, errPart: "userId: is 1100 bytes"},
		{name: "HEAD on the pixel records nothing", call: call{method: "HEAD", path: pixel}, code: 405},
		// single-event routes
		{name: "track", call: call{method: "POST", path: "/v1/track", key: "web-write-key", body: []byte(`{"event":"Viewed","anonymousId":"a"}`)}, code: 200, stored: 1,
			check: func(t *testing.T, r reply) {
				if e := f.last(t, 1)[0].Event; e.Type != "track" {
					t.Errorf("stored type %q, want track from the route", e.Type)
				}
			}},
		{name: "identify", call: call{method: "POST", path: "/v1/identify", key: "web-write-key", body: []byte(`{"userId":"u","traits":{"plan":"pro"}}`)}, code: 200, stored: 1},
		{name: "page", call: call{method: "POST", path: "/v1/page", key: "web-write-key", body: []byte(`{"name":"Home","userId":"u"}`)}, code: 200, stored: 1},
		{name: "screen", call: call{method: "POST", path: "/v1/screen", key: "web-write-key", body: []byte(`{"name":"Home","userId":"u"}`)}, code: 200, stored: 1},
		{name: "group", call: call{method: "POST", path: "/v1/group", key: "web-write-key", body: []byte(`{"groupId":"g","userId":"u"}`)}, code: 200, stored: 1},
		{name: "alias", call: call{method: "POST", path: "/v1/alias", key: "web-write-key", body: []byte(`{"previousId":"a","userId":"u"}`)}, code: 200, stored: 1},
		{name: "alias without previousId", call: call{method: "POST", path: "/v1/alias", key: "web-write-key", body: []byte(`{"userId":"u"}`)}, code: 400, errPart: "previousId: is required"},
		{name: "type other than the route's", call: call{method: "POST", path: "/v1/track", key: "web-write-key", body: []byte(`{"type":"page","userId":"u"}`)}, code: 400, errPart: `type: is "page" but the endpoint takes "track"`},
		{name: "single event with write key in body", call: call{method: "POST", path: "/v1/page", body: []byte(`{"writeKey":"web-write-key","userId":"u"}`)}, code: 200, stored: 1},
		// beacons and clicks
		{name: "pixel", call: call{method: "GET", path: pixel}, code: 200, stored: 1, check: func(t *testing.T, r reply) {
			if r.header.Get("Content-Type") != "image/gif" || !bytes.Equal(r.body, gif) || !strings.Contains(r.header.Get("Cache-Control"), "no-store") {
				t.Errorf("pixel: %s %q %q", r.header.Get("Content-Type"), r.header.Get("Cache-Control"), r.body)
			}
			if e := f.last(t, 1)[0].Event; e.Type != "track" || e.Event != "Email Opened" {
				t.Errorf("pixel stored %+v", e)
			}
		}},
		{name: "pixel without data", call: call{method: "GET", path: "/v1/pixel"}, code: 400, errPart: "data: is required"},
		{name: "pixel data not base64", call: call{method: "GET", path: "/v1/pixel?data=%%%"}, code: 400, errPart: "data:"},
		{name: "pixel without write key", call: call{method: "GET", path: "/v1/pixel?data=" + b64(`{"event":"E","userId":"u"}`)}, code: 401, errPart: "missing write key"},
		{name: "redirect", call: call{method: "GET", path: "/v1/redirect?url=" + url.QueryEscape("https://shop.example/sale?id=7") + "&data=" + click}, code: 302, stored: 1,
			check: func(t *testing.T, r reply) {
				if r.header.Get("Location") != "https://shop.example/sale?id=7" {
					t.Errorf("Location = %q", r.header.Get("Location"))
				}
			}},
		{name: "redirect to an allowed subdomain", call: call{method: "GET", path: "/v1/redirect?url=" + url.QueryEscape("https://img.cdn.example/a.png") + "&data=" + click}, code: 302, stored: 1},
		{name: "redirect to another host", call: call{method: "GET", path: "/v1/redirect?url=" + url.QueryEscape("https://evil.example/") + "&data=" + click}, code: 400, errPart: "not in redirect.allowed_hosts"},
		{name: "redirect to a look-alike host", call: call{method: "GET", path: "/v1/redirect?url=" + url.QueryEscape("https://shop.example.evil.example/") + "&data=" + click}, code: 400, errPart: "not in redirect.allowed_hosts"},
		{name: "redirect to javascript:", call: call{method: "GET", path: "/v1/redirect?url=" + url.QueryEscape("javascript:alert(1)") + "&data=" + click}, code: 400, errPart: "absolute http or https"},
		{name: "redirect without url", call: call{method: "GET", path: "/v1/redirect?data=" + click}, code: 400, errPart: "url: is required"},
		// CORS and the rest
		{name: "preflight from an allowed origin", call: call{method: "OPTIONS", path: "/v1/batch", header: map[string]string{"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}}, code: 204,
			check: func(t *testing.T, r reply) {
				if r.header.Get("Access-Control-Allow-Origin") != "https://shop.example" || r.header.Get("Access-Control-Allow-Credentials") != "" ||
					!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
					t.Errorf("preflight headers %v", r.header)
				}
			}},
		{name: "post from an allowed origin", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", header: map[string]string{"Origin": "https://shop.example"}, body: batchOf(trackEvent)}, code: 200, stored: 1,
			check: func(t *testing.T, r reply) {
				if r.header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
					t.Errorf("Access-Control-Allow-Origin = %q", r.header.Get("Access-Control-Allow-Origin"))
				}
			}},
		{name: "post from another origin", call: call{method: "POST", path: "/v1/batch", key: "web-write-key", header: map[string]string{"Origin": "https://evil.example"}, body: batchOf(trackEvent)}, code: 403, errPart: "not in cors.allowed_origins"},
		{name: "unknown route", call: call{method: "POST", path: "/v1/purchase", key: "web-write-key", body: batchOf(trackEvent)}, code: 404, errPart: "no route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.stored(t, f.s.cfg.Topics.Raw.Name)
			r := f.do(t, tc.call)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d; body %s", r.code, tc.code, r.body)
			}
			if tc.errPart != "" {
				text := r.resp.Error
				for _, rej := range r.resp.Rejected {
					text += " " + rej.Error
				}
				if !strings.Contains(text, tc.errPart) {
					t.Errorf("response %s does not say %q", r.body, tc.errPart)
				}
			}
			if tc.code == 200 && r.header.Get("Content-Type") == "application/json" && !r.resp.Success {
				t.Errorf("200 without success: %s", r.body)
			}
			if got := f.stored(t, f.s.cfg.Topics.Raw.Name) - before; got != tc.stored {
				t.Errorf("%d records reached Kafka, want %d", got, tc.stored)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// TestEnvelopeFields checks what the collector adds around an event: the
// request's signals, clock correction, batch context and messageIds.
func TestEnvelopeFields(t *testing.T) {
	f := newAPIFixture(t, nil)
	start := time.Now().UTC()
	// The device's clock runs an hour ahead: it stamped the event a minute
	// before it sent the batch.
	deviceSent := start.Add(time.Hour)
	deviceEvent := deviceSent.Add(-time.Minute)
	body := `{"sentAt":"` + deviceSent.Format(time.RFC3339Nano) + `","context":{"library":{"name":"analytics-go"},"locale":"en-US"},"batch":[` +
		`{"type":"track","event":"Viewed","anonymousId":"anon-7","messageId":"kept-id","timestamp":"` + deviceEvent.Format(time.RFC3339Nano) + `","context":{"locale":"zh-CN"}},` +
		`{"type":"page","userId":"user-7"}]}`
	r := f.do(t, call{method: "POST", path: "/v1/batch", key: "web-write-key", body: []byte(body), header: map[string]string{
		"DNT": "1", "Sec-GPC": "1", "User-Agent": "agent/7",
	}})
	if r.code != 200 {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	envs := f.last(t, 2)
	byType := map[string]event.Envelope{}
	for _, e := range envs {
		byType[e.Event.Type] = e
	}
	track, page := byType["track"], byType["page"]
	for _, e := range envs {
		if !e.Signals.DNT || !e.Signals.GPC || e.Signals.UserAgent != "agent/7" || e.Signals.IP != "127.0.0.1" ||
			e.SourceID != "web" || e.Region != "cn" || e.SchemaVersion != event.SchemaVersion {
			t.Errorf("envelope %+v", e)
		}
	}
	if track.MessageID != "kept-id" || len(page.MessageID) != 36 {
		t.Errorf("messageIds %q and %q: want the client's kept and a UUID generated", track.MessageID, page.MessageID)
	}
	corrected, err := time.Parse(time.RFC3339Nano, track.Event.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	// receivedAt - (sentAt - timestamp) = receivedAt - 1 minute.
	if want := track.ReceivedAt.Add(-time.Minute); !corrected.Equal(want) {
		t.Errorf("corrected timestamp %v, want %v (receivedAt - 1m)", corrected, want)
	}
	if track.Event.OriginalTimestamp != deviceEvent.Format(time.RFC3339Nano) {
		t.Errorf("originalTimestamp %q, want the device's %q", track.Event.OriginalTimestamp, deviceEvent.Format(time.RFC3339Nano))
	}
	if page.Event.Timestamp != page.ReceivedAt.Format(time.RFC3339Nano) {
		t.Errorf("event without a timestamp: %q, want receivedAt %v", page.Event.Timestamp, page.ReceivedAt)
	}
	var ctx map[string]any
	_ = json.Unmarshal(track.Event.Context, &ctx)
	if ctx["locale"] != "zh-CN" || ctx["library"] == nil {
		t.Errorf("context %s: want the event's locale and the batch's library", track.Event.Context)
	}
}

// TestConsent posts consent updates as a client source (the web page's
// public key), a server source and a client with consent tokens, and reads
// privacy.consent back: what a source may not say is refused with 403
// naming the field, and nothing is written.
func TestConsent(t *testing.T) {
	f := newAPIFixture(t, nil)
	now := time.Now().UTC()
	// Tokens issued as a backend would, just before they are used: after
	// the records of the cases before them (within the leeway).
	token := func(c consenttoken.Claims) string {
		c.IssuedAt, c.Expiry = now.Add(30*time.Second).Truncate(time.Second), now.Add(10*time.Minute).Truncate(time.Second)
		tok, err := consenttoken.Sign(testTokenKey, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	no := false
	// Issued before any record of the test, and replayed after a withdrawal.
	tokenT, _ := consenttoken.Sign(testTokenKey, consenttoken.Claims{UserID: "user-t", Purposes: []string{"analytics"}, CrossBorder: true,
		IssuedAt: now.Add(-time.Minute).Truncate(time.Second), Expiry: now.Add(10 * time.Minute).Truncate(time.Second)})
	expired, _ := consenttoken.Sign(testTokenKey, consenttoken.Claims{UserID: "user-t", CrossBorder: true,
		IssuedAt: now.Add(-2 * time.Hour).Truncate(time.Second), Expiry: now.Add(-time.Hour).Truncate(time.Second)})
	tenDaysAgo := now.Add(-240 * time.Hour).Format(time.RFC3339)
	cases := []struct {
		name, key, body string
		code            int
		errPart, field  string
	}{
		{"server grants a user", "backend-write-key", `{"userId":"user-c","purposes":{"analytics":true,"marketing":false},"crossBorder":true}`, 200, "", ""},
		{"client grants its device, marks a minor", "web-write-key", `{"anonymousId":"anon-c","purposes":{"analytics":true},"minor":true}`, 200, "", ""},
		{"client forges a user's grant", "web-write-key", `{"userId":"victim","purposes":{"analytics":true},"crossBorder":true,"minor":false,"guardianConsent":true}`, 403, "a client source may grant purposes only for its own anonymousId", "purposes.analytics"},
		{"client grants cross-border", "web-write-key", `{"anonymousId":"anon-x","purposes":{"analytics":true},"crossBorder":true}`, 403, "may not grant cross-border transfer", "crossBorder"},
		{"client gives guardian consent", "web-write-key", `{"anonymousId":"anon-c","purposes":{"analytics":true},"guardianConsent":true}`, 403, "may not give guardian consent", "guardianConsent"},
		{"client clears a minor", "web-write-key", `{"anonymousId":"anon-c","purposes":{"analytics":true},"minor":false}`, 403, "may not clear minor", "minor"},
		{"client leaves minor out", "web-write-key", `{"anonymousId":"anon-c","purposes":{"analytics":true,"personalization":true}}`, 200, "", ""},
		{"client withdraws a user's", "web-write-key", `{"userId":"user-c","purposes":{"analytics":true}}`, 200, "", ""},
		{"token vouches a user's cross-border", "web-write-key", `{"userId":"user-t","anonymousId":"anon-t","purposes":{"analytics":true},"crossBorder":true,"consentToken":"` + tokenT + `"}`, 200, "", ""},
		{"token for another user", "web-write-key", `{"userId":"victim","purposes":{"analytics":true},"consentToken":"` +
			token(consenttoken.Claims{UserID: "user-t", Purposes: []string{"analytics"}}) + `"}`, 403, "another userId", "consentToken"},
		{"token vouches less", "web-write-key", `{"userId":"user-t2","purposes":{"analytics":true},"crossBorder":true,"consentToken":"` +
			token(consenttoken.Claims{UserID: "user-t2", Purposes: []string{"analytics"}}) + `"}`, 403, "cross-border", "crossBorder"},
		{"token clears a minor", "web-write-key", `{"anonymousId":"anon-c","purposes":{"analytics":true},"minor":false,"consentToken":"` +
			token(consenttoken.Claims{AnonymousID: "anon-c", Minor: &no}) + `"}`, 200, "", ""},
		{"expired token", "web-write-key", `{"userId":"user-t","purposes":{"analytics":true},"crossBorder":true,"consentToken":"` + expired + `"}`, 403, "consentToken: consent token: expired", "consentToken"},
		{"forged token", "web-write-key", `{"userId":"user-t","purposes":{"analytics":true},"consentToken":"` + expired[:len(expired)-4] + `AAAA"}`, 403, "consentToken", "consentToken"},
		// A device id spelt like a user's: the device's consent, not the user's.
		{"client grants a device named like a user", "web-write-key", `{"anonymousId":"user-c","purposes":{"analytics":true,"marketing":true},"crossBorder":true}`, 403, "cross-border", "crossBorder"},
		// ... answered as if written, but not: keyed alike, it would take
		// the user's record's place once the topic is compacted.
		{"client grants a device named like a user, no cross-border", "web-write-key", `{"anonymousId":"user-c","purposes":{"analytics":true,"marketing":true}}`, 200, "", ""},
		{"then still no grant for the user", "web-write-key", `{"userId":"user-c","purposes":{"analytics":true,"marketing":true}}`, 403, "not marketing for a userId", "purposes.marketing"},
		// A token replayed after the consent it vouched for was withdrawn.
		{"server withdraws user-t", "backend-write-key", `{"userId":"user-t","purposes":{}}`, 200, "", ""},
		{"the token replayed", "web-write-key", `{"userId":"user-t","anonymousId":"anon-t","purposes":{"analytics":true},"crossBorder":true,"consentToken":"` + tokenT + `"}`, 403, "issued before the subject's consent last changed", "purposes.analytics"},
		// Stamped ahead: recorded as of its receipt.
		{"server grants, stamped ahead", "backend-write-key", `{"userId":"user-f","purposes":{"analytics":true},"timestamp":"` + now.Add(50*time.Minute).Format(time.RFC3339) + `"}`, 200, "", ""},
		{"backdated", "web-write-key", `{"anonymousId":"anon-c","purposes":{"analytics":true},"timestamp":"` + tenDaysAgo + `","sentAt":"` + now.Format(time.RFC3339) + `"}`, 400, "max_event_age", ""},
		{"far future", "backend-write-key", `{"userId":"user-c","purposes":{"analytics":true},"timestamp":"2099-01-01T00:00:00Z"}`, 400, "max_future_skew", ""},
		{"unknown purpose", "web-write-key", `{"userId":"u","purposes":{"analytics":true,"telepathy":true}}`, 400, "purposes.telepathy: unknown purpose", ""},
		{"no purposes", "web-write-key", `{"userId":"u"}`, 400, "purposes: is required", ""},
		{"no subject", "web-write-key", `{"purposes":{"analytics":true}}`, 400, "userId or anonymousId is required", ""},
		{"purpose not a bool", "web-write-key", `{"userId":"u","purposes":{"analytics":"yes"}}`, 400, "purposes", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.stored(t, f.s.cfg.Topics.Consent.Name)
			r := f.do(t, call{method: "POST", path: "/v1/consent", key: tc.key, body: []byte(tc.body)})
			if r.code != tc.code || !strings.Contains(r.resp.Error, tc.errPart) || r.resp.Field != tc.field {
				t.Fatalf("%d %s, want %d with %q naming field %q", r.code, r.body, tc.code, tc.errPart, tc.field)
			}
			want := int64(0)
			if tc.code == 200 && !strings.Contains(tc.name, "named like a user") {
				want = 1
			}
			if got := f.stored(t, f.s.cfg.Topics.Consent.Name) - before; got != want {
				t.Errorf("%d consent records written, want %d", got, want)
			}
		})
	}
	var states []event.ConsentState
	for _, rec := range testenv.ReadTopic(t, testenv.Context(t, 30*time.Second), f.brokers, f.s.cfg.Topics.Consent.Name, 8) {
		st, err := event.DecodeConsentState(rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		if string(rec.Key) != st.Subject {
			t.Errorf("record key %q, subject %q", rec.Key, st.Subject)
		}
		states = append(states, st)
	}
	slices.SortFunc(states, func(a, b event.ConsentState) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	want := []struct {
		subject, authority, keyID string
		purposes                  []string
		crossBorder, minor        bool
	}{
		{"user-c", event.AuthorityServer, "", []string{"analytics"}, true, false},
		{"anon-c", event.AuthorityClient, "", []string{"analytics"}, false, true},
		{"anon-c", event.AuthorityClient, "", []string{"analytics", "personalization"}, false, true}, // minor kept
		{"user-c", event.AuthorityClient, "", []string{"analytics"}, false, false},
		{"user-t", event.AuthorityToken, testTokenKey.ID, []string{"analytics"}, true, false},
		{"anon-c", event.AuthorityToken, testTokenKey.ID, []string{"analytics"}, false, false},
		{"user-t", event.AuthorityServer, "", nil, false, false},
		{"user-f", event.AuthorityServer, "", []string{"analytics"}, false, false},
	}
	for i, w := range want {
		st := states[i]
		if st.Subject != w.subject || st.Authority != w.authority || st.TokenKeyID != w.keyID || !slices.Equal(policy.PurposesOf(st.Purposes).Names(), append([]string{}, w.purposes...)) ||
			len(st.Purposes) != len(event.Purposes) || st.CrossBorder != w.crossBorder || st.Minor != w.minor || st.UpdatedAt.IsZero() {
			t.Errorf("record %d: %+v, want %+v", i, st, w)
		}
	}
	if f := states[7]; f.UpdatedAt.After(f.ReceivedAt) {
		t.Errorf("a record stamped ahead: updatedAt %v after its receipt %v", f.UpdatedAt, f.ReceivedAt)
	}
	// The latest recorded governs: each subject's records are stamped in
	// the order they were written, none at the same millisecond.
	last := map[string]time.Time{}
	for _, st := range states {
		if prev, ok := last[st.Subject]; ok && !st.UpdatedAt.Truncate(time.Millisecond).After(prev.Truncate(time.Millisecond)) {
			t.Errorf("%s: a record stamped %v after one stamped %v", st.Subject, st.UpdatedAt, prev)
		}
		last[st.Subject] = st.UpdatedAt
	}
	for reason, n := range map[string]float64{"user_grant": 3, "cross_border": 3, "guardian_consent": 1, "minor_cleared": 1,
		"token_subject": 1, "token_expired": 1, "token_bad_signature": 1, "out_of_time_bounds": 2, "key_taken": 1} {
		if got := testutil.ToFloat64(f.s.consent.refused.WithLabelValues(reason)); got != n {
			t.Errorf("collector_consent_updates_refused_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
}

// TestHeaderLimit checks oversized headers are refused before any handler
// runs.
func TestHeaderLimit(t *testing.T) {
	f := newAPIFixture(t, nil)
	before := f.stored(t, f.s.cfg.Topics.Raw.Name)
	r := f.do(t, call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(trackEvent),
		header: map[string]string{"X-Padding": strings.Repeat("x", 64<<10)}})
	if r.code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", r.code)
	}
	if got := f.stored(t, f.s.cfg.Topics.Raw.Name) - before; got != 0 {
		t.Errorf("%d records reached Kafka", got)
	}
}

// TestStaleToken: a token issued before, or in the second of, the
// subject's latest record vouches for nothing.
func TestStaleToken(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		iat, recorded time.Time
		want          bool
	}{
		{at, time.Time{}, false},
		{at, at.Add(-time.Second), false},
		{at, at.Add(466 * time.Millisecond), true},
		{at, at.Add(time.Minute), true},
	} {
		if got := stale(tc.iat, tc.recorded); got != tc.want {
			t.Errorf("stale(%v, %v) = %v, want %v", tc.iat, tc.recorded, got, tc.want)
		}
	}
}
