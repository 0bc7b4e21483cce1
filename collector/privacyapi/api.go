// Package privacyapi is the collector's privacy admin API, for operators
// with a bearer token (privacy.operators):
//
//   - POST /v1/privacy/erasures records an erasure of the subject(s) it
//     names. For each identifier given (userId, anonymousId) it produces a
//     record keyed by the identifier's in-region pseudonym to
//     topics.erasures (privacy.erasures, compacted, never tombstoned: the
//     suppression list the enricher reads, which holds no raw identifier),
//     a record keyed by the identifier itself to topics.erasure_requests
//     (deleted after its retention), and a tombstone of the identifier to
//     topics.consent; and one receipt (stage collector, status accepted) to
//     topics.receipts. The enricher reads the request, passes the erasure
//     on to every region and destination as their pseudonyms, whose sinks
//     delete the rows and write receipts of their own (erasure.go).
//   - GET /v1/privacy/erasures/{id} answers a request's status from the
//     receipts: done once every destination the enricher notified has
//     verified the deletion of every subject of the request (status.go).
//   - POST /v1/privacy/exports answers every row the region's database
//     holds about a subject (its userId's, its anonymousId's, and those of
//     the anonymousIds linked to the userId), read with a read-only user,
//     and the rows of the export destination's database (export.go).
//
// API is the handlers and the state they read (state.go: the receipts,
// the identity links, the databases an export reads). It writes through
// the collector's producer and reads the consent the collector follows,
// both given to it (Deps): its records share the ingest server's buffer
// (http.max_buffered_records), and its erasures are keyed as the consent
// store reads them. Server serves API.Routes on a listener of its own,
// never on the public port nor on the admin port with /metrics: what
// Prometheus and the probes may reach and what the privacy office may
// reach are separate ports, each with its own network policy.
//
// The listener is loopback by default (privacy.listen 127.0.0.1:9105);
// the config refuses any other address without TLS (privacy.tls) unless
// privacy.allow_plaintext says so. With privacy.tls.client_ca_file set,
// a client must also present a certificate that CA signed; the handlers
// still want an operator's bearer token on every request. With no
// privacy.operators the API is off: nothing listens, the handlers refuse
// every request, and no state is read.
//
// Delivery: an erasure is answered 202 only after Kafka acknowledged every
// one of its records (acks=all, idempotent producer); on a produce error or
// timeout it is 503 with Retry-After, and some of the records may still
// have landed. A retry is safe: erasing a subject twice leaves it erased (the
// retry gets a new request id, and compaction keeps the latest record).
// An export is answered only once its receipt is acknowledged.
//
// Raw identifiers never reach a log or a receipt: both name the subject by
// its in-region pseudonym (privacy.pseudonym).
//
// Metrics: privacy_erasure_requests_total{reason},
// privacy_erasure_requests_refused_total{code},
// privacy_exports_total{result}, and franz-go's client metrics under
// collector_receipts_ and collector_identities_.
package privacyapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/obs"
)

var _ obs.Component = (*API)(nil)

// ServeMux patterns of the privacy admin API.
const (
	ErasureRoute       = "POST /v1/privacy/erasures"
	ErasureStatusRoute = "GET /v1/privacy/erasures/{id}"
	ExportRoute        = "POST /v1/privacy/exports"
)

// Deps is what the API uses of the rest of the collector.
type Deps struct {
	// Produce hands records to the collector's producer and returns once
	// Kafka acknowledged every one, or with an error (ingest.Server.Produce).
	Produce func([]*kgo.Record) error
	// Consent is the consent the collector follows
	// (ingest.Server.ConsentStore).
	Consent Consent
	// WaitConsent returns once Consent holds every record acknowledged
	// before the call (ingest.Server.WaitConsent).
	WaitConsent func(context.Context) error
}

// Consent is what an erasure asks of the consent the collector follows:
// which records erase a subject from the suppression list as the store
// keys it, and whether a user holds the consent record under an id.
type Consent interface {
	SuppressionRecords(topic, id string, rec event.ErasureRecord) []*kgo.Record
	KeyTaken(id string) bool
}

var _ Consent = (*consentstore.Store)(nil)

// API is the privacy admin API's handlers and the state they read.
type API struct {
	cfg         ingest.Config
	log         *slog.Logger
	metrics     *metrics
	produce     func([]*kgo.Record) error
	consent     Consent
	waitConsent func(context.Context) error
	// operators may call the API.
	operators []operator
	// state is what the handlers read besides the request; nil without
	// operators.
	state *state
	now   func() time.Time

	stopOnce sync.Once
	stopErr  error
}

// operator is a configured operator with the hash of its token: hashes all
// have one length, so comparing them says nothing about the token's.
type operator struct {
	name      string
	tokenHash [sha256.Size]byte
}

// NewAPI builds the API from the collector's validated config. It does not
// touch the network until Start.
func NewAPI(cfg ingest.Config, deps Deps, reg prometheus.Registerer, log *slog.Logger) (*API, error) {
	a := &API{cfg: cfg, log: log, metrics: newMetrics(reg), produce: deps.Produce, consent: deps.Consent, waitConsent: deps.WaitConsent, now: time.Now}
	for _, op := range cfg.Privacy.Operators {
		a.operators = append(a.operators, operator{name: op.Name, tokenHash: sha256.Sum256([]byte(op.Token.Reveal()))})
	}
	var err error
	if a.state, err = newState(&a.cfg, reg, log); err != nil {
		return nil, err
	}
	return a, nil
}

// Routes are the API's handlers by ServeMux pattern, for Server. They
// authenticate operators themselves and must never be served on the
// public listener, nor on the admin port that probes and Prometheus reach.
func (a *API) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		ErasureRoute:       http.HandlerFunc(a.handleErasure),
		ErasureStatusRoute: http.HandlerFunc(a.handleErasureStatus),
		ExportRoute:        http.HandlerFunc(a.handleExport),
	}
}

// Start creates or checks the API's topics, then returns once the receipts
// and identity links written before it are read. With no operators it
// does nothing.
func (a *API) Start(ctx context.Context) error {
	if a.state == nil {
		return nil
	}
	t := &a.cfg.Topics
	if err := kafkax.EnsureTopics(ctx, a.state.receiptsTail.Client(), []kafkax.TopicSpec{t.ErasureRequests, t.Receipts}, []kafkax.TopicSpec{t.Identities}, a.log); err != nil {
		return fmt.Errorf("privacy api topics: %w", err)
	}
	return a.state.start(ctx)
}

// Ready is always nil: the handlers answer 503 when they cannot do their
// work, and the collector's readiness is about the public API.
func (a *API) Ready(context.Context) error { return nil }

// Shutdown stops reading the receipts and links and closes the database
// connections; Server stops first. It is idempotent and safe without Start.
func (a *API) Shutdown(ctx context.Context) error {
	a.stopOnce.Do(func() {
		if a.state != nil {
			a.stopErr = a.state.shutdown(ctx)
		}
	})
	return a.stopErr
}

// response is every JSON answer that is not the route's own: the public
// API's, {"success": false, "error": ...}.
type response struct {
	Success bool   `json:"success"`
	Error   string `json:"error,omitempty"`
}

// result is a refusal before it is written.
type result struct {
	code       int
	resp       response
	retryAfter time.Duration // for 503
}

func fail(code int, format string, args ...any) result {
	return result{code: code, resp: response{Error: fmt.Sprintf(format, args...)}}
}

func (res result) write(w http.ResponseWriter) {
	if res.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(res.retryAfter.Seconds()))))
	}
	writeJSON(w, res.code, res.resp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
