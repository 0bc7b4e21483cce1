package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/consenttoken"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// consentGate decides who may write which consent (policy.AuthorizeConsent)
// against each subject's consent in force, which it follows from
// privacy.consent and privacy.erasures: whether an update grants or only
// restates and withdraws, and what minor was, depend on it.
type consentGate struct {
	store    *consentstore.Store
	follower *consentstore.Follower
	// tokens verifies consent tokens; nil when consent_tokens has no key.
	tokens *consenttoken.Verifier
	// caughtUp waits, up to the produce timeout, for the store to hold
	// every consent record acknowledged before a request.
	caughtUp *catchUp
	refused  *prometheus.CounterVec
}

// catchUp shares one wait among the requests that arrive while another
// runs: each joins the next wait to start, never one under way, which may
// have listed the end offsets before the request's predecessors were
// acknowledged. Under load, one round trip to Kafka serves many updates.
type catchUp struct {
	wait    func(context.Context) error
	timeout time.Duration

	mu      sync.Mutex
	next    *catchUpRound // the wait to start once the running one ends
	running bool
}

type catchUpRound struct {
	done chan struct{}
	err  error
}

// Wait returns once a wait started after the call has ended, or ctx ends.
func (c *catchUp) Wait(ctx context.Context) error {
	c.mu.Lock()
	r := c.next
	if r == nil {
		r = &catchUpRound{done: make(chan struct{})}
		c.next = r
	}
	if !c.running {
		c.running = true
		go c.run()
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *catchUp) run() {
	for {
		c.mu.Lock()
		r := c.next
		c.next = nil
		if r == nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		r.err = c.wait(ctx)
		cancel()
		close(r.done)
	}
}

// Reasons a consent update is refused, beyond policy.RefusalReasons and
// the consent token's ("token_" + consenttoken reason).
const (
	refusedOutOfTimeBounds = "out_of_time_bounds"
	refusedTokensOff       = "token_not_configured"
	// refusedKeyTaken: an anonymousId spelt like a userId with consent
	// recorded; answered 200, not written.
	refusedKeyTaken = "key_taken"
	// refusedErased: the subject is erased; a record under its id would
	// keep the raw id in the compacted topic for good. Answered 200, not
	// written, so the answer does not tell who is erased.
	refusedErased = "erased"
)

var tokenReasons = []string{consenttoken.ReasonMalformed, consenttoken.ReasonUnknownKey, consenttoken.ReasonBadSignature,
	consenttoken.ReasonExpired, consenttoken.ReasonNotYetValid, consenttoken.ReasonTooLongLived, consenttoken.ReasonInvalidClaims}

func newConsentGate(cfg *Config, reg prometheus.Registerer, log *slog.Logger) (*consentGate, error) {
	tokens, err := cfg.ConsentTokens.Verifier()
	if err != nil {
		return nil, fmt.Errorf("consent tokens: %w", err)
	}
	// The latest change per subject is all the gate asks about, and when
	// it was recorded. The suppression list is keyed by pseudonyms: without
	// the in-region key (privacy.pseudonym), the gate does not know who is
	// erased.
	var keys *policy.Keyring
	if cfg.Privacy.Pseudonym.Key != "" {
		if keys, err = cfg.Privacy.Pseudonym.Keyring(); err != nil {
			return nil, fmt.Errorf("privacy.pseudonym: %w", err)
		}
	}
	store := consentstore.New(1, keys)
	store.TrackRecorded()
	follower, err := consentstore.NewFollower(&cfg.Kafka, cfg.Topics.Consent.Name, cfg.Topics.Erasures.Name, store, reg, "collector", log)
	if err != nil {
		return nil, err
	}
	g := &consentGate{store: store, follower: follower, tokens: tokens, caughtUp: &catchUp{wait: follower.WaitCaughtUp, timeout: cfg.HTTP.ProduceTimeout},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collector_consent_updates_refused_total",
			Help: "Consent updates refused with 403 (or 400 for their time), nothing written, by reason: user_grant, cross_border, guardian_consent, minor_cleared, token_subject (who may say what), token_<reason> and token_not_configured (the consent token), out_of_time_bounds; key_taken (an anonymousId spelt like a userId with consent) and erased (an erased subject: its id would be kept in the compacted topic), both answered 200, not written.",
		}, []string{"reason"})}
	reg.MustRegister(g.refused)
	for _, r := range policy.RefusalReasons {
		g.refused.WithLabelValues(string(r))
	}
	for _, r := range tokenReasons {
		g.refused.WithLabelValues("token_" + r)
	}
	g.refused.WithLabelValues(refusedTokensOff)
	g.refused.WithLabelValues(refusedKeyTaken)
	g.refused.WithLabelValues(refusedErased)
	g.refused.WithLabelValues(refusedOutOfTimeBounds)
	return g, nil
}

// refuse counts a refused update and answers 403 naming field.
func (g *consentGate) refuse(reason, field, msg string) result {
	g.refused.WithLabelValues(reason).Inc()
	res := fail(http.StatusForbidden, "%s", msg)
	res.resp.Field = field
	return res
}

// verdict is what authorize makes of a consent update.
type verdict struct {
	// consent is what the record is to state, authority on whose word it
	// is written (event.Authority*), keyID the key of the token that
	// vouched for it.
	consent          policy.Consent
	authority, keyID string
	// changed is the subject's latest recorded change: the record must not
	// be stamped before it.
	changed time.Time
}

// authorize decides whether src may write u, received at now; else it
// returns the answer to write.
func (g *consentGate) authorize(ctx context.Context, u event.ConsentUpdate, src *source, now time.Time) (v verdict, res result, ok bool) {
	v.authority = event.AuthorityClient
	if src.IsServer() {
		v.authority = event.AuthorityServer
	}
	var claims consenttoken.Claims
	if u.ConsentToken != "" {
		if g.tokens == nil {
			return v, g.refuse(refusedTokensOff, "consentToken", "consentToken: this collector verifies no consent tokens (consent_tokens.keys is empty)"), false
		}
		var err error
		claims, err = g.tokens.Verify(u.ConsentToken, now)
		if tokenErr, isToken := errors.AsType[*consenttoken.Error](err); isToken {
			return v, g.refuse("token_"+tokenErr.Reason, "consentToken", "consentToken: "+tokenErr.Error()), false
		}
		if !src.IsServer() {
			v.authority = event.AuthorityToken
		}
		v.keyID = claims.KeyID
	}
	if err := g.caughtUp.Wait(ctx); err != nil {
		res = fail(http.StatusServiceUnavailable, "consent not recorded: the subject's consent in force could not be read in time, retry later")
		res.retryAfter = time.Second
		return v, res, false
	}
	kind, subject := consentstore.KindUser, u.UserID
	if subject == "" {
		kind, subject = consentstore.KindAnonymous, u.AnonymousID
	}
	prev, changed := g.store.Latest(kind, subject)
	v.changed = changed
	var voucher *policy.Voucher
	if u.ConsentToken != "" {
		purposes, _ := policy.ParsePurposes(claims.Purposes) // Verify checked them
		voucher = &policy.Voucher{UserID: claims.UserID, AnonymousID: claims.AnonymousID, Purposes: purposes,
			CrossBorder: claims.CrossBorder, GuardianConsent: claims.GuardianConsent, Minor: claims.Minor,
			// Replaying a token must not undo a change recorded since it
			// was issued: iat has whole seconds, so one of the second of
			// the latest record is stale too.
			Stale: stale(claims.IssuedAt, g.store.Recorded(kind, subject))}
	}
	var err error
	v.consent, err = policy.AuthorizeConsent(policy.WriteOf(u), src.IsServer(), voucher, prev)
	if refusal, isRefusal := errors.AsType[*policy.Refusal](err); isRefusal {
		return v, g.refuse(string(refusal.Reason), refusal.Field, refusal.Error()), false
	}
	return v, result{}, true
}

// ConsentStore is the consent the server follows (privacy.consent and
// privacy.erasures), for the privacy admin API: its erasures are keyed as
// the store reads them.
func (s *Server) ConsentStore() *consentstore.Store { return s.consent.store }

// WaitConsent returns once ConsentStore holds every record acknowledged
// before the call, or ctx ends. It shares one wait with the consent
// updates and erasures that arrive meanwhile.
func (s *Server) WaitConsent(ctx context.Context) error { return s.consent.caughtUp.Wait(ctx) }

// stale reports whether a token issued at iat predates a record received
// at recorded (zero: none), to the second.
func stale(iat, recorded time.Time) bool {
	return !recorded.IsZero() && !iat.After(recorded.Truncate(time.Second))
}

// maxFutureSkew bounds http.max_future_skew: an event stamped further
// ahead is a broken clock, not a device offline.
const maxFutureSkew = 24 * time.Hour

// handleConsent produces a subject's new consent state to privacy.consent,
// if its source may say it.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	hold := bodyHold{budget: &s.bodies}
	defer hold.release()
	body, res, ok := s.readBody(w, r, "consent", nil, &hold)
	if !ok {
		res.write(w)
		return
	}
	if !s.enter(w) {
		return
	}
	defer s.leave()
	if len(body) > s.cfg.HTTP.MaxEventBytes {
		fail(http.StatusRequestEntityTooLarge, "consent update is %d bytes, more than the limit of %d", len(body), s.cfg.HTTP.MaxEventBytes).write(w)
		return
	}
	if err := s.shape.Check(body); err != nil {
		fail(http.StatusBadRequest, "%v", err).write(w)
		return
	}
	u, err := event.DecodeConsentUpdate(body)
	if err != nil {
		fail(http.StatusBadRequest, "%v", err).write(w)
		return
	}
	src, res, ok := s.authenticate(r, u.WriteKey)
	if !ok {
		res.write(w)
		return
	}
	receivedAt := s.now().UTC()
	state := u.State(receivedAt, src.Name, s.cfg.Region)
	if !event.InRange(state.UpdatedAt) {
		fail(http.StatusBadRequest, "timestamp: corrected for the device's clock it falls outside %d to %d", event.MinTime.Year(), event.MaxTime.Year()-1).write(w)
		return
	}
	// A backdated update could slip under a withdrawal recorded since.
	if err := s.cfg.HTTP.TimeBounds().Check("timestamp", state.UpdatedAt, receivedAt); err != nil {
		s.consent.refused.WithLabelValues(refusedOutOfTimeBounds).Inc()
		fail(http.StatusBadRequest, "%v", err).write(w)
		return
	}

	// Refused updates count against the source's rate limit too: each
	// costs the collector a round trip to Kafka.
	rv, res, ok := s.admit(src, 1, nil)
	if !ok {
		res.write(w)
		return
	}
	v, res, ok := s.consent.authorize(r.Context(), u, src, receivedAt)
	if !ok {
		res.write(w)
		return
	}
	state.Minor, state.Authority, state.TokenKeyID = v.consent.Minor, v.authority, v.keyID
	// The latest recorded change governs: consent is not given after it
	// was received (one stamped ahead would outlive a withdrawal recorded
	// in between), nor at or before the subject's latest recorded change
	// (the store keeps milliseconds; a device's backdated withdrawal would
	// count only until that change).
	if state.UpdatedAt.After(receivedAt) {
		state.UpdatedAt = receivedAt
	}
	if !v.changed.IsZero() && !v.changed.Before(state.UpdatedAt) {
		state.UpdatedAt = v.changed.Add(time.Millisecond).UTC()
	}
	value, err := json.Marshal(state)
	if err != nil {
		fail(http.StatusInternalServerError, "encode consent state: %v", err).write(w)
		return
	}
	refused := ""
	switch {
	case s.consent.store.Suppressed(consentstore.KindOf(state), state.Subject):
		refused = refusedErased
	case u.UserID == "" && s.consent.store.KeyTaken(u.AnonymousID):
		// Keyed alike, it would take the user's record's place once the
		// topic is compacted. No anonymousId an SDK makes is any user's id:
		// the answer does not tell whether one is.
		refused = refusedKeyTaken
	}
	if refused != "" {
		s.consent.refused.WithLabelValues(refused).Inc()
		succeeded := result{code: http.StatusOK, resp: response{Success: true}}
		succeeded.write(w)
		return
	}
	rec := &kgo.Record{Topic: s.cfg.Topics.Consent.Name, Key: []byte(state.Subject), Value: value}
	s.produceAdmitted(src, rv, []*kgo.Record{rec}, nil).write(w)
}
