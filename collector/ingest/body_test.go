package ingest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// trickler is a client that sends a batch request's headers and the start
// of its body, then a byte of it now and then, and never the end.
type trickler struct {
	conn net.Conn
	// answer is what the collector answered, once it did; answered says
	// it did.
	answer   chan trickleAnswer
	answered atomic.Bool
}

type trickleAnswer struct {
	code  int
	resp  response
	close bool  // the answer said Connection: close
	eof   error // what reading on after the answer gave: nil once the connection closed
	err   error
}

// startTrickler connects to addr and sends the start of a body of
// 60,000 bytes: `{"batch":[` and head spaces. It reads the answer as
// soon as one comes.
func startTrickler(t *testing.T, addr string, head int) *trickler {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	key := base64.StdEncoding.EncodeToString([]byte("web-write-key:"))
	start := `{"batch":[` + strings.Repeat(" ", head)
	if _, err := fmt.Fprintf(conn, "POST /v1/batch HTTP/1.1\r\nHost: collector\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n%s", key, start); err != nil {
		t.Fatal(err)
	}
	tr := &trickler{conn: conn, answer: make(chan trickleAnswer, 1)}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return // the collector closed the connection
			}
		}
	}()
	go func() {
		// A bound on the test, not a timing assertion: the collector
		// answers within http.body_timeout.
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		defer tr.answered.Store(true)
		if err != nil {
			tr.answer <- trickleAnswer{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		a := trickleAnswer{code: resp.StatusCode, close: resp.Close}
		if err := json.Unmarshal(body, &a.resp); err != nil {
			a.err = fmt.Errorf("answer is not JSON: %q", body)
		}
		_, a.eof = br.ReadByte()
		if errors.Is(a.eof, io.EOF) {
			a.eof = nil
		}
		tr.answer <- a
	}()
	return tr
}

// waitFor polls cond until it holds, failing the test after 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
	}
}

// TestSlowBodiesHoldNoSlot: more clients than http.max_in_flight_requests
// trickling their bodies lock no one out: a normal request is answered
// 200 while they trickle, and each of them is answered 408 once
// http.body_timeout has passed, and its connection closed.
func TestSlowBodiesHoldNoSlot(t *testing.T) {
	const slots, slow = 2, 5
	f := newAPIFixture(t, func(c *Config) {
		c.HTTP.MaxInFlightRequests = slots
		c.HTTP.BodyTimeout = 2 * time.Second
	})
	var tricklers []*trickler
	for range slow {
		tricklers = append(tricklers, startTrickler(t, f.s.Addr(), 10))
	}
	// Every body is being read: its first bytes are held.
	waitFor(t, "every slow body to be read", func() bool { return f.s.bodies.used.Load() >= slow*int64(len(`{"batch":[`)+10) })
	for i, tr := range tricklers {
		if tr.answered.Load() {
			t.Fatalf("trickler %d was answered before its body was in: %+v", i, <-tr.answer)
		}
	}

	r := f.do(t, call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(trackEvent)})
	if r.code != http.StatusOK {
		t.Fatalf("a normal request while %d bodies trickle in (http.max_in_flight_requests %d): %d %s; want 200", slow, slots, r.code, r.body)
	}

	for i, tr := range tricklers {
		a := <-tr.answer
		switch {
		case a.err != nil:
			t.Errorf("trickler %d: %v", i, a.err)
		case a.code != http.StatusRequestTimeout || !strings.Contains(a.resp.Error, "http.body_timeout") || !a.close:
			t.Errorf("trickler %d: answered %d %+v, Connection: close %v; want 408 naming http.body_timeout, closing", i, a.code, a.resp, a.close)
		case a.eof != nil:
			t.Errorf("trickler %d: after the answer: %v, want the connection closed", i, a.eof)
		}
	}
	if got := testutil.ToFloat64(f.s.metrics.bodiesCut.WithLabelValues(cutBodyTimeout)); got != slow {
		t.Errorf("collector_http_bodies_cut_total{reason=body_timeout} = %v, want %d", got, slow)
	}
	waitFor(t, "the slow bodies' bytes to be given back", func() bool { return f.s.bodies.used.Load() == 0 })
}

// TestBodyMemoryBound: the bytes of bodies arriving are bounded by
// http.max_body_memory_bytes; the request that would pass it is answered
// 503 and its connection closed, while a small request still fits.
func TestBodyMemoryBound(t *testing.T) {
	f := newAPIFixture(t, func(c *Config) {
		c.HTTP.MaxBodyMemoryBytes = maxBodyHeld(c.HTTP.MaxRequestBytes) // 192 KiB: 64 KiB bodies
		c.HTTP.BodyTimeout = 3 * time.Second
	})
	const head = 50_000
	var held []*trickler
	for i := range 3 {
		held = append(held, startTrickler(t, f.s.Addr(), head))
		waitFor(t, "a body's first bytes to be held", func() bool { return f.s.bodies.used.Load() >= int64(i+1)*head })
	}
	// 150,000 bytes held; 50,000 more would pass 196,608.
	over := startTrickler(t, f.s.Addr(), head)
	a := <-over.answer
	if a.err != nil || a.code != http.StatusServiceUnavailable || !strings.Contains(a.resp.Error, "http.max_body_memory_bytes") || !a.close || a.eof != nil {
		t.Errorf("the body over the bound: %d %+v (%v), Connection: close %v, then %v; want 503 naming http.max_body_memory_bytes, connection closed",
			a.code, a.resp, a.err, a.close, a.eof)
	}
	if got := testutil.ToFloat64(f.s.metrics.bodiesCut.WithLabelValues(cutBodyMemory)); got != 1 {
		t.Errorf("collector_http_bodies_cut_total{reason=body_memory} = %v, want 1", got)
	}
	if r := f.do(t, call{method: "POST", path: "/v1/batch", key: "web-write-key", body: batchOf(trackEvent)}); r.code != http.StatusOK {
		t.Errorf("a small request under the bound: %d %s, want 200", r.code, r.body)
	}
	for _, tr := range held {
		if a := <-tr.answer; a.code != http.StatusRequestTimeout {
			t.Errorf("a held body: answered %d %+v (%v), want 408", a.code, a.resp, a.err)
		}
	}
}

// TestBodyBufferGrowsAsItArrives: a body is held as it arrives, whatever
// its Content-Length says: a client that declares 500 KB and sends ten
// bytes holds a small buffer, and its ten bytes.
func TestBodyBufferGrowsAsItArrives(t *testing.T) {
	budget := bodyBudget{limit: 1 << 20, gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})}
	hold := bodyHold{budget: &budget}
	stalled := errors.New("stalled")
	r := io.MultiReader(strings.NewReader("0123456789"), iotestErr{stalled})
	b, err := readAll(r, nil, 500_000+1, &hold)
	if !errors.Is(err, stalled) || string(b) != "0123456789" {
		t.Fatalf("readAll = %q, %v", b, err)
	}
	if cap(b) > minBodyBuffer || hold.n != 10 || budget.used.Load() != 10 {
		t.Errorf("after 10 bytes: buffer of %d bytes, %d held (budget %d); want at most %d, 10, 10", cap(b), hold.n, budget.used.Load(), minBodyBuffer)
	}
	hold.release()
	if budget.used.Load() != 0 || testutil.ToFloat64(budget.gauge) != 0 {
		t.Errorf("after release: %d held, gauge %v", budget.used.Load(), testutil.ToFloat64(budget.gauge))
	}
}

type iotestErr struct{ err error }

func (r iotestErr) Read([]byte) (int, error) { return 0, r.err }

// TestInFlightLimit: a request being served, its body read, holds a slot
// until it is answered; one more than http.max_in_flight_requests is
// refused at once rather than queued.
func TestInFlightLimit(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:1"}) // a request waits http.produce_timeout for Kafka
	cfg.HTTP.ProduceTimeout = time.Second
	cfg.HTTP.MaxInFlightRequests = 1
	s, err := New(cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	first := make(chan int, 1)
	go func() {
		req := httptest.NewRequest(http.MethodPost, "/v1/batch", strings.NewReader(`{"batch":[`+validEvent+`]}`))
		req.SetBasicAuth("web-write-key", "")
		rec := httptest.NewRecorder()
		s.http.Handler.ServeHTTP(rec, req)
		first <- rec.Code
	}()
	waitFor(t, "the first request to be served", func() bool { return testutil.ToFloat64(s.metrics.inFlight) == 1 })
	rec, resp := request(t, s, "web-write-key", strings.NewReader(`{"batch":[`+validEvent+`]}`), nil)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Error, "serving 1 requests already") || rec.Header().Get("Retry-After") == "" {
		t.Errorf("second request: %d %+v, Retry-After %q; want 503 at once", rec.Code, resp, rec.Header().Get("Retry-After"))
	}
	if code := <-first; code != http.StatusServiceUnavailable {
		t.Errorf("first request: %d, want 503 once Kafka did not acknowledge", code)
	}
}
