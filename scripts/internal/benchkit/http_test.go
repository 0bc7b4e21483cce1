package benchkit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPostJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "not json", http.StatusUnsupportedMediaType)
			return
		}
		switch user, _, basic := r.BasicAuth(); {
		case r.Header.Get("Authorization") == "Bearer op-token":
			w.Header().Set("Retry-After", "7")
			http.Error(w, "  busy  ", http.StatusServiceUnavailable)
		case basic && user == "wk":
			w.Write(append([]byte("got "), body...))
		default:
			http.Error(w, "who?", http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	b, err := PostJSON(ctx, srv.Client(), srv.URL, Credentials{WriteKey: "wk"}, []byte(`{}`), http.StatusOK)
	if err != nil || string(b) != "got {}" {
		t.Errorf("with the write key: %q, %v", b, err)
	}
	if err := Post(ctx, srv.Client(), srv.URL, "wk", []byte(`{}`)); err != nil {
		t.Errorf("Post: %v", err)
	}
	err = Post(ctx, srv.Client(), srv.URL, "other", []byte(`{}`))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized || se.Msg != "who?" || se.RetryAfter != time.Second {
		t.Errorf("wrong key: %#v; want a 401 StatusError with the body and the default retry", err)
	}
	_, err = PostJSON(ctx, srv.Client(), srv.URL, Credentials{WriteKey: "wk", Token: "op-token"}, nil, http.StatusAccepted)
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || se.RetryAfter != 7*time.Second || se.Msg != "busy" {
		t.Errorf("bearer token, 503: %#v; want the token sent and Retry-After read", err)
	}
	if err.Error() != "503 Service Unavailable: busy" {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestGrantConsentPostsEverySubjectOnce(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/consent" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		seen[string(body)]++
		mu.Unlock()
	}))
	defer srv.Close()
	pop, err := NewPopulation(50, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := GrantConsent(context.Background(), srv.Client(), srv.URL, "wk", 50, func(i int) []byte { return pop.Consent(i, false, true) }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 50 {
		t.Errorf("%d distinct consent updates; want 50", len(seen))
	}
	for b, n := range seen {
		if n != 1 {
			t.Errorf("%s posted %d times", b, n)
		}
	}
	err = GrantConsent(context.Background(), srv.Client(), srv.URL+"/elsewhere", "wk", 5, func(int) []byte { return nil })
	if err == nil || !strings.Contains(err.Error(), "consent: 404") {
		t.Errorf("GrantConsent to a 404 = %v; want the status", err)
	}
}

func TestBatchBodyIsASegmentBatch(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CST", 8*3600))
	b := BatchBody(now, 3, 10, func(b []byte, k int) []byte {
		return append(b, `{"messageId":"m`+string(rune('0'+k))+`"}`...)
	})
	var got struct {
		SentAt string
		Batch  []struct{ MessageID string }
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.SentAt != "2026-01-01T19:04:05.000000006Z" || len(got.Batch) != 3 || got.Batch[2].MessageID != "m2" {
		t.Errorf("%s", b)
	}
}

func TestLookupIDsRefusesQuotes(t *testing.T) {
	// Refused before any query: no connection needed.
	if _, err := LookupIDs(context.Background(), nil, "db", []string{"ok-1", "x') OR 1=1 --"}); err == nil {
		t.Error("an id with a quote was accepted")
	}
}
