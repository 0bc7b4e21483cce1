// Package pipeline is the enricher: it consumes events.raw.<region>, judges
// each event by its subject's consent at the event's time (consent store,
// internal/policy rules), de-identifies what is kept with the in-region
// profile into events.clean.<region> and, with cross-border consent, with
// the export profile into events.export.<dest> through the cross-border
// gate. Records it cannot decode, and exports the gate refuses, go to the
// in-region dead-letter topic with the reason in headers.
//
// Delivery: exactly once from the raw topic to the clean, export and
// dead-letter topics. Each polled batch is one Kafka transaction holding its
// output records and its consumer offsets (franz-go's GroupTransactSession),
// so readers with isolation read_committed see every event once: a crash or
// a failed produce aborts the transaction and the batch is consumed again.
// The transactional ID (transactional_id) must be unique per instance and
// stable across its restarts, so a restarted instance fences its own
// unfinished transaction.
//
// Consent: before judging a batch, the consent store applies everything the
// consent and erasure topics hold (consent.sync_timeout), so consent
// recorded before an event was sent is in force for it. An event is kept
// only for what consent allowed both at its time and at its receipt.
// Consent carried in events counts within what its source may say
// (policy.Carry) and is written back to privacy.consent in the batch's
// transaction; identity links come only from kept events of sources that
// may assert them (policy.MayLink).
//
// Client retries (same source and messageId within dedup_window) are
// dropped; the memory of them is this instance's.
//
// Metrics: enricher_events_in_total, enricher_events_out_total{route},
// enricher_events_dropped_total{reason},
// enricher_events_kept_by_purpose_total{purpose},
// enricher_consent_default_grants_total{source},
// enricher_consent_carried_refused_total,
// enricher_consent_carried_written_total,
// enricher_identity_links_refused_total{reason}, enricher_dedup_entries,
// enricher_transactions_total{outcome},
// enricher_transaction_duration_seconds, enricher_commit_duration_seconds,
// enricher_consumer_lag_records, enricher_user_agents_bounded_total{reason},
// the consent store's enricher_consent_* metrics, and franz-go's client
// metrics under enricher_ and enricher_consent_.
package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/identity"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/retry"
)

const stage = "enricher"

var _ obs.Component = (*Pipeline)(nil)

// Pipeline is the enricher component.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// violations counts departures from the catalogue (committed only).
	violations *violationLog
	sess       *kgo.GroupTransactSession
	store      *consentstore.Store
	follower   *consentstore.Follower
	rules      policy.Rules
	clean      *policy.Profile
	export     *policy.Profile // nil: no export destination
	agents     *policy.UserAgentParser
	dedup      *dedup // used by the run loop only
	lag        *kafkax.Lag
	notifier   *notifier
	rechecks   rechecks // of links to users erased elsewhere (eraseLateLinks)
	// unwritten holds consent carried in events of an aborted batch: the
	// store applied it already, so the batch's replay finds no change to
	// write, and the next transaction writes it instead (run loop only).
	unwritten []*kgo.Record

	cancel       context.CancelFunc
	done         chan error    // the loop's result, for Done
	stopped      chan struct{} // closed when the loop has returned
	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds the enricher from a validated config.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Pipeline, error) {
	agents, err := policy.NewUserAgentParser(4096)
	if err != nil {
		return nil, fmt.Errorf("user agent parser: %w", err)
	}
	agents.LimitParses(cfg.UserAgentParsesPerSecond, 10*cfg.UserAgentParsesPerSecond)
	clean, export, err := cfg.NewProfiles(agents)
	if err != nil {
		return nil, err
	}
	if cfg.MaxPollRecords == 0 {
		cfg.MaxPollRecords = Default().MaxPollRecords
	}
	store := consentstore.New(cfg.Consent.History, clean.Keys())
	follower, err := consentstore.NewFollower(&cfg.Kafka, cfg.Topics.Consent.Name, cfg.Topics.Erasures.Name, store, reg, "enricher", log)
	if err != nil {
		return nil, err
	}
	lag := kafkax.NewLag(reg, "enricher")
	sess, err := kafkax.NewTransactSession(&cfg.Kafka, reg, "enricher", log, append(lag.Opts(),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.ConsumerGroup(cfg.GroupID),
		kgo.ConsumeTopics(cfg.Topics.Raw.Name),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		// lz4: zstd's better ratio cost 4% of the enricher's CPU.
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
	)...)
	if err != nil {
		follower.Client().Close()
		return nil, err
	}
	rules := cfg.Consent.Rules()
	sources := make([]string, 0, len(rules.Defaults))
	for s := range rules.Defaults {
		sources = append(sources, s)
	}
	p := &Pipeline{cfg: cfg, log: log, metrics: newMetrics(reg, sources), violations: newViolationLog(reg), sess: sess, store: store, follower: follower,
		rules: rules, clean: clean, export: export, agents: agents, lag: lag,
		dedup: newDedup(cfg.DedupWindow, cfg.DedupMaxEntries), done: make(chan error, 2), stopped: make(chan struct{})}
	if p.notifier, err = p.newNotifier(reg); err != nil {
		sess.Close()
		follower.Client().Close()
		return nil, err
	}
	return p, nil
}

// Violations serves the departures from the catalogue seen so far, by
// source, event, path and reason (never a value), as JSON.
func (p *Pipeline) Violations() http.Handler { return p.violations }

// newNotifier builds the erasure notifier: a consumer group on the erasure
// records and a tail of the identity links.
func (p *Pipeline) newNotifier(reg prometheus.Registerer) (*notifier, error) {
	cfg := &p.cfg
	n := &notifier{cfg: cfg, log: p.log, metrics: p.metrics, links: identity.New(), now: time.Now,
		destinations: []noticeDestination{{name: cfg.Region, topic: cfg.Topics.ErasureNotices.Name, keys: p.clean.Keys()}},
		passed:       newPassedUsers(2 * cfg.TransactionTimeout), store: p.store}
	if p.export != nil {
		n.destinations = append(n.destinations, noticeDestination{name: cfg.Export.Name, topic: cfg.Export.ErasureNotices.Name, keys: p.export.Keys()})
	}
	var err error
	applyLinks := n.links.Apply(p.log)
	n.linksTail, err = kafkax.NewTail(&cfg.Kafka, reg, "enricher_identities", p.log, []string{cfg.Topics.Identities.Name}, func(records []*kgo.Record) {
		applyLinks(records)
		p.eraseLateLinks(records)
	})
	if err != nil {
		return nil, err
	}
	n.client, err = kafkax.NewClient(&cfg.Kafka, reg, "enricher_erasures", p.log, append(kafkax.WorkGroup(cfg.GroupID+"-erasures", cfg.Topics.ErasureRequests.Name),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()))...)
	if err != nil {
		_ = n.linksTail.Shutdown(context.Background())
		return nil, err
	}
	return n, nil
}

// NewProfiles builds the in-region profile and the export profile (nil
// without an export destination) with their keyrings and the catalogue,
// as the enricher does. A catalogue that does not parse is an error that
// names its file, line and path.
func (c *Config) NewProfiles(agents *policy.UserAgentParser) (clean, export *policy.Profile, err error) {
	cat, err := c.Catalogue.Load()
	if err != nil {
		return nil, nil, fmt.Errorf("catalogue: %w", err)
	}
	build := func(name string, key Pseudonym, export bool) (*policy.Profile, error) {
		ring, err := key.Keyring()
		if err != nil {
			return nil, fmt.Errorf("profile %s keys: %w", name, err)
		}
		p, err := policy.NewProfile(name, c.Profiles[name], ring, agents, policy.Declared{Catalogue: cat, Export: export, Categories: c.Consent.Rules().Categories})
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", name, err)
		}
		return p, nil
	}
	if clean, err = build(c.CleanProfile, c.Pseudonym, false); err != nil || c.Export.Name == "" {
		return clean, nil, err
	}
	export, err = build(c.Export.Profile, c.Export.Pseudonym, true)
	return clean, export, err
}

// Start creates or checks the topics, rebuilds the consent store from its
// topics, and starts consuming in the background.
func (p *Pipeline) Start(ctx context.Context) error {
	t := p.cfg.Topics
	owned := []kafkax.TopicSpec{t.Clean, t.DLQ, t.Consent, t.Erasures, t.ErasureRequests, t.Identities, t.ErasureNotices}
	if p.export != nil {
		owned = append(owned, p.cfg.Export.Topic, p.cfg.Export.ErasureNotices)
	}
	if err := kafkax.EnsureTopics(ctx, p.sess.Client(), owned, []kafkax.TopicSpec{t.Raw, t.Receipts}, p.log); err != nil {
		return fmt.Errorf("enricher topics: %w", err)
	}
	if err := p.follower.Start(ctx); err != nil {
		return err
	}
	if err := p.notifier.linksTail.Start(ctx); err != nil {
		return fmt.Errorf("read identity links: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	var loops sync.WaitGroup
	for _, loop := range []func(context.Context) error{p.run, p.notifier.run} {
		loops.Go(func() {
			if err := loop(runCtx); err != nil {
				p.done <- err
			}
		})
	}
	go func() {
		loops.Wait()
		close(p.stopped)
	}()
	p.log.Info("enricher consuming", "from", t.Raw.Name, "to", t.Clean.Name, "export", p.cfg.Export.Topic.Name, "group", p.cfg.GroupID)
	return nil
}

// Done yields the loop's error if it stops on its own.
func (p *Pipeline) Done() <-chan error { return p.done }

// Ready reports whether Kafka answers.
func (p *Pipeline) Ready(ctx context.Context) error { return p.sess.Client().Ping(ctx) }

// Shutdown stops the loop (an unfinished batch is not committed and will be
// replayed), leaves the group and closes the clients. Idempotent and safe
// without Start.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() {
		if p.cancel != nil {
			p.cancel()
			select {
			case <-p.stopped:
			case <-ctx.Done():
				p.shutdownErr = fmt.Errorf("enricher loop did not stop: %w", ctx.Err())
			}
		}
		p.rechecks.stop()
		p.sess.Close()
		p.notifier.client.AllowRebalance()
		p.notifier.client.Close()
		p.shutdownErr = errors.Join(p.shutdownErr, p.follower.Shutdown(ctx), p.notifier.linksTail.Shutdown(ctx))
	})
	return p.shutdownErr
}

func (p *Pipeline) run(ctx context.Context) error {
	aborted := 0 // transactions aborted in a row
	for {
		fetches := p.sess.PollRecords(ctx, p.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			p.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		p.lag.Observe(fetches)
		records := fetches.Records()
		if len(records) == 0 {
			continue
		}
		committed, err := p.transact(records)
		if err != nil {
			return err
		}
		if committed {
			aborted = 0
			continue
		}
		// An aborted batch is consumed again at once; wait a little first
		// so a broker that keeps failing is not hammered.
		if retry.Default.Wait(ctx, aborted) != nil {
			return nil
		}
		aborted++
	}
}

// transact judges and de-identifies records and writes the results and the
// batch's offsets in one transaction. committed false means it aborted and
// the batch will be consumed again; an error means the session cannot go
// on. It runs to the end even while shutting down: cancelling a
// transaction midway would leave the client unusable.
func (p *Pipeline) transact(records []*kgo.Record) (committed bool, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.TransactionTimeout)
	defer cancel()
	if err := p.sess.Begin(); err != nil {
		return false, fmt.Errorf("begin transaction: %w", err)
	}
	// The consent store catches up while the batch is decoded: decoding
	// does not depend on consent, judging does.
	synced := make(chan error, 1)
	go func() {
		syncCtx, cancelSync := context.WithTimeout(ctx, p.cfg.Consent.SyncTimeout)
		defer cancelSync()
		synced <- p.follower.WaitCaughtUp(syncCtx)
	}()
	// Records are produced as each part of the batch is ready, in the
	// batch's order, so the client compresses and sends them while the rest
	// is processed; the transaction commits only if all were acknowledged.
	var produced producedRecords
	end := kgo.TryCommit
	produced.produce(ctx, p.sess, p.unwritten)
	out, keys, t, err := p.processBatch(records, func() error { return <-synced },
		func(part []*kgo.Record) { produced.produce(ctx, p.sess, part) })
	if err != nil {
		// Judging by stale consent could keep what a withdrawal forbids.
		p.log.Warn("consent store not current; aborting the transaction", "err", err)
		end = kgo.TryAbort
	}
	// The last part need not linger for company: nothing more comes.
	if err := p.sess.Client().Flush(ctx); err != nil && end == kgo.TryCommit {
		p.log.Warn("produce not acknowledged in time; aborting the transaction", "records", len(out), "err", err)
		end = kgo.TryAbort
	}
	if err := produced.wait(); err != nil && end == kgo.TryCommit {
		p.log.Warn("produce failed; aborting the transaction", "records", len(out), "err", err)
		end = kgo.TryAbort
	}
	endStart := time.Now()
	committed, err = p.sess.End(ctx, end)
	p.metrics.commitDuration.Observe(time.Since(endStart).Seconds())
	p.metrics.transactionDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		p.metrics.transactions.WithLabelValues("failed").Inc()
		return false, fmt.Errorf("end transaction: %w", err)
	}
	if !committed {
		p.metrics.transactions.WithLabelValues("aborted").Inc()
		p.keepUnwritten(out)
		return false, nil
	}
	p.unwritten = nil
	// Only now: the events of an aborted batch come again and must pass.
	p.dedup.add(keys, time.Now())
	p.metrics.transactions.WithLabelValues("committed").Inc()
	p.metrics.add(t)
	p.violations.add(t.violations, time.Now())
	p.metrics.dedupEntries.Set(float64(p.dedup.size()))
	return true, nil
}

// keepUnwritten keeps, for the next transaction, the consent records of an
// aborted one's output and those it was to write for an earlier one.
func (p *Pipeline) keepUnwritten(out []*kgo.Record) {
	var again []*kgo.Record
	for _, r := range slices.Concat(p.unwritten, out) {
		if r.Topic == p.cfg.Topics.Consent.Name {
			// A new record: the client wrote into the produced one.
			again = append(again, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value})
		}
	}
	p.unwritten = again
}

// item is one raw record on its way through a batch.
type item struct {
	rec    *kgo.Record
	in     *policy.Parsed
	poison error
	key    dedupKey // source and messageId, for de-duplication
	// user and anon are the event's userId and anonymousId, hashed.
	user, anon consentstore.Subject
	d          policy.Decision
	dup        bool
	// linkStands: an identify or alias that would be kept by the consent
	// in force before it, whatever it carries itself and were its subject
	// not erased: only such an event may link (or erase) a device.
	linkStands bool
	// linkOwner is the userId the device of an identify or alias is
	// linked to already, by the links tail or earlier in the batch.
	linkOwner string
	// consent holds privacy.consent records of the consent the event
	// carried; carriedRefused says it granted what its source may not.
	consent        []*kgo.Record
	carriedRefused bool
	clean          *kgo.Record
	// violations are the event's departures from the catalogue, counted
	// under eventLabel.
	violations []policy.Violation
	eventLabel string
	export     *kgo.Record // the export, or its dead letter when refused
	gate       error       // why the gate refused the export
}

// producedRecords tracks the records produced in a transaction.
type producedRecords struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	firstErr error
}

func (r *producedRecords) produce(ctx context.Context, sess *kgo.GroupTransactSession, records []*kgo.Record) {
	r.wg.Add(len(records))
	for _, rec := range records {
		sess.Produce(ctx, rec, r.promise)
	}
}

func (r *producedRecords) promise(_ *kgo.Record, err error) {
	if err != nil {
		r.mu.Lock()
		if r.firstErr == nil {
			r.firstErr = err
		}
		r.mu.Unlock()
	}
	r.wg.Done()
}

// wait waits for every record's acknowledgement and returns the first
// error.
func (r *producedRecords) wait() error {
	r.wg.Wait()
	return r.firstErr
}

// process turns a batch into its output records, the de-duplication keys of
// the events it stores, and its counts.
func (p *Pipeline) process(records []*kgo.Record) (out []*kgo.Record, keys []dedupKey, t *tally) {
	out, keys, t, _ = p.processBatch(records, nil, nil)
	return out, keys, t
}

// assemble appends an item's output records, and its de-duplication key
// if it is stored, and counts it.
func (p *Pipeline) assemble(it *item, out []*kgo.Record, keys []dedupKey, t *tally) ([]*kgo.Record, []dedupKey) {
	switch {
	case it.poison != nil:
		t.dropped[dropPoison]++
		return append(out, kafkax.DeadLetter(it.rec, p.cfg.Topics.DLQ.Name, stage, "invalid_envelope", it.poison)), keys
	case it.dup:
		t.dropped[dropDuplicate]++
		return out, keys
	}
	if link, refused := p.linkRecord(it); link != nil {
		out = append(out, link...)
		if link[0].Topic == p.cfg.Topics.Identities.Name {
			t.links++
		}
	} else if refused != "" {
		t.linksRefused[refused]++
	}
	out = append(out, it.consent...)
	t.carriedWritten += len(it.consent)
	if it.carriedRefused {
		t.carriedRefused++
	}
	if it.d.Drop != "" {
		t.dropped[string(it.d.Drop)]++
		return out, keys
	}
	keys = append(keys, it.key)
	out = append(out, it.clean)
	t.clean++
	if it.in.UserAgentCut() {
		t.uaTruncated++
	}
	if it.in.UserAgentUnparsed() {
		t.uaUnparsed++
	}
	if len(it.violations) > 0 {
		label := p.clean.EventLabel(it.in)
		for _, v := range it.violations {
			t.violations = append(t.violations, violation{source: it.in.Env.SourceID, event: label, Violation: v})
		}
	}
	for _, name := range it.d.Purposes.Names() {
		t.purposes[name]++
	}
	if it.d.ByDefault {
		t.defaultGrants[strings.ToLower(it.in.Env.SourceID)]++
	}
	switch {
	case it.gate != nil:
		out = append(out, it.export)
		t.dropped[dropGateRefused]++
	case it.export != nil:
		out = append(out, it.export)
		t.export++
	}
	return out, keys
}

// linkRecord is the privacy.identities record of an identify or alias
// event (or the records of a device erasure), or nil and why not. A link must not be poisoned: it comes only
// from an event that was kept (whatever purpose kept it: links serve
// erasure and export), and would have been without the consent it
// carries itself, and from a source that may assert it
// (policy.MayLink); a client may not move a device already linked to
// another user. A link to an erased userId becomes an erasure of the
// device instead, so the device's earlier events go too, and the link
// (the userId) is never written; but only when the link would have
// stood, from an event received before the erasure was asked for: an
// event naming an erased userId must not erase a device that never had a
// consented event under it.
func (p *Pipeline) linkRecord(it *item) ([]*kgo.Record, string) {
	env := &it.in.Env
	from, user, ok := env.Event.Link()
	aliased := env.Event.Type == "alias"
	switch {
	case !ok:
		return nil, ""
	case !policy.MayLink(env.Event.Type, env.Signals.ServerSource):
		return nil, linkClientAlias
	case it.d.Drop == policy.DropSuppressed:
		if !it.linkStands || p.store.Suppressed(consentstore.KindAnonymous, from) || !p.store.Suppressed(consentstore.KindUser, user) ||
			p.store.SuppressedBefore(consentstore.KindUser, user, env.ReceivedAt) {
			return nil, linkEventDropped
		}
		return p.deviceErasure(from, aliased), ""
	case it.d.Drop != "" || !it.linkStands:
		return nil, linkEventDropped
	case !mayLink(it, user):
		return nil, linkClientRelink
	}
	via := "identify"
	if aliased {
		via = "alias"
	}
	value, _ := json.Marshal(event.IdentityLink{SchemaVersion: event.SchemaVersion, UserID: user, LinkedAt: env.ReceivedAt, Via: via})
	return []*kgo.Record{{Topic: p.cfg.Topics.Identities.Name, Key: []byte(from), Value: value}}, ""
}

// mayLink reports whether an identify or alias that may assert a link may
// link its device to user: a client may not move a device already linked
// to another user.
func mayLink(it *item, user string) bool {
	env := &it.in.Env
	return policy.MayLink(env.Event.Type, env.Signals.ServerSource) &&
		(it.linkOwner == "" || it.linkOwner == user || env.Signals.ServerSource)
}

// deviceErasure is the erasure of a device linked to an erased userId: its
// suppression records and the request the notifier passes on. An alias's
// previousId (aliased) is erased as a userId too.
func (p *Pipeline) deviceErasure(from string, aliased bool) []*kgo.Record {
	rec := event.ErasureRecord{SchemaVersion: event.SchemaVersion, RequestID: "linked-" + newRequestID(),
		Reason: event.ReasonLinkedToErased, Operator: stage, RequestedAt: time.Now().UTC(), SubjectKind: event.SubjectAnonymousID}
	if aliased {
		rec.SubjectKind = event.SubjectPreviousID // it may be a userId
	}
	value, _ := json.Marshal(rec)
	return append(p.store.SuppressionRecords(p.cfg.Topics.Erasures.Name, from, rec),
		&kgo.Record{Topic: p.cfg.Topics.ErasureRequests.Name, Key: []byte(from), Value: value})
}

// eraseLateLinks erases the devices of links written after the notifier
// looked at their userId's links: links judged before the erasure and
// committed after. Those are the links the tail reads after this instance
// passed the erasure on (the notifier waits for the tail to settle before
// it looks, so a link read before then is in the notice already): their
// devices are erased at once.
//
// A link to a user whose erasure this instance has not passed on (read
// before its own notifier looked, or passed on by another instance) is
// checked again after a grace: by then the notifier that passed the
// erasure has suppressed the device, or it never will (it crashed in
// between), and the device is erased here. Erasing it at once would erase
// most such devices twice, under a second request.
func (p *Pipeline) eraseLateLinks(records []*kgo.Record) {
	late, unsure := p.lateLinks(records, time.Now())
	p.eraseDevices(late)
	for _, l := range unsure {
		p.rechecks.after(p.lateLinkGrace(), func() {
			if p.store.Suppressed(consentstore.KindUser, l.user) && !p.store.Suppressed(consentstore.KindAnonymous, l.device) {
				p.eraseDevices([]linkToErased{l})
			}
		})
	}
}

// linkToErased is an identity link whose userId is erased.
type linkToErased struct {
	device, user string
	aliased      bool // the device is an alias's previousId
}

// lateLinks sorts the links among records, read at now, whose userId is
// erased and whose device is not: late ones, to a user this instance
// passed on, and unsure ones.
func (p *Pipeline) lateLinks(records []*kgo.Record, now time.Time) (late, unsure []linkToErased) {
	for _, r := range records {
		if r.Value == nil {
			continue
		}
		link, err := event.DecodeIdentityLink(r.Value)
		l := linkToErased{device: string(r.Key), user: link.UserID, aliased: link.Aliased()}
		switch {
		case err != nil || p.store.Suppressed(consentstore.KindAnonymous, l.device):
		case p.notifier.passed.has(p.store.Subject(consentstore.KindUser, l.user), now):
			late = append(late, l)
		case p.store.Suppressed(consentstore.KindUser, l.user):
			unsure = append(unsure, l)
		}
	}
	return late, unsure
}

// lateLinkGrace is how long an unsure link waits: as long as a passed
// erasure is remembered, the time a notifier takes being far below it.
func (p *Pipeline) lateLinkGrace() time.Duration { return p.notifier.passed.keep }

// eraseDevices records erasures of devices linked to erased users.
func (p *Pipeline) eraseDevices(links []linkToErased) {
	if len(links) == 0 {
		return
	}
	var out []*kgo.Record
	for _, l := range links {
		out = append(out, p.deviceErasure(l.device, l.aliased)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.TransactionTimeout)
	defer cancel()
	if err := p.notifier.client.ProduceSync(ctx, out...).FirstErr(); err != nil {
		p.log.Error("devices linked to erased users not erased; erase them through the privacy API", "devices", len(links), "err", err)
	}
}

// newRequestID is a random id for an erasure the enricher records itself.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// parse decodes a raw record; an error means it is poison (permanent).
// The record's value must not change while the result is in use.
func parse(rec *kgo.Record) (*policy.Parsed, error) {
	if in, ok := policy.ParseRaw(rec.Value); ok {
		return in, nil
	}
	// Anything unusual, poison included, the slow way: the same result,
	// or the error that says what is wrong.
	env, err := event.DecodeEnvelope(rec.Value)
	if err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	in, err := policy.Parse(env)
	if err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return in, nil
}

// judge applies the consent rules to one event, by the consent in force
// at its time and at its receipt. Consent the event carries updates the
// store first, so it counts for this event and the subject's next ones,
// and is written to privacy.consent with the batch (it.consent), so a
// restart, a rebalance or another instance sees it too.
func (p *Pipeline) judge(it *item) policy.Decision {
	in, ev := it.in, &it.in.Env.Event
	suppressed := p.store.SuppressedSubject(it.user) || p.store.SuppressedSubject(it.anon)
	// A minor's linked devices are a minor's.
	var linked consentstore.Subject
	if ev.AnonymousID != "" {
		linked = p.store.Subject(consentstore.KindUser, p.notifier.links.Owner(ev.AnonymousID))
	}
	judge := func(suppressed bool) policy.Decision {
		return p.rules.Judge(in, p.store.InForce(in.At, it.user, it.anon, linked), p.store.InForce(in.Env.ReceivedAt, it.user, it.anon, linked), suppressed)
	}
	if _, _, ok := ev.Link(); ok {
		it.linkStands = judge(false).Drop == ""
	}
	if carried := p.rules.Carried(in); carried != nil && !suppressed {
		var deviceRefused bool
		it.consent, deviceRefused = p.recordCarried(in, carried)
		it.carriedRefused = carried.Refused != 0 || deviceRefused
	}
	d := judge(suppressed)
	// A kept event is no minor's (InForce makes it one): only a dropped
	// one costs the lookups.
	if d.Drop != "" && !suppressed && ev.AnonymousID != "" && p.unguardedMinor(it.user, in) {
		// No link is written from a minor's event (it is never kept): the
		// device of any event of a minor's is marked a minor's instead, so
		// its anonymous events are a minor's too, whatever else dropped
		// this one.
		it.consent = append(it.consent, p.markMinorDevice(in)...)
	}
	return d
}

// recordCarried applies consent carried in an event to the store, under
// the identifiers its source may speak for, and returns the
// privacy.consent records of those whose consent it changed, and whether
// the device's change was refused (consentstore's KeyTaken).
func (p *Pipeline) recordCarried(in *policy.Parsed, u *policy.CarriedUpdate) (out []*kgo.Record, deviceRefused bool) {
	env := &in.Env
	at := policy.CarriedAt(in)
	for _, c := range [2]struct {
		id   string
		kind consentstore.Kind
		ch   policy.Carried
	}{{env.Event.UserID, consentstore.KindUser, u.User}, {env.Event.AnonymousID, consentstore.KindAnonymous, u.Anonymous}} {
		if c.id == "" || c.ch.Named == 0 {
			continue
		}
		if c.kind == consentstore.KindAnonymous && p.store.KeyTaken(c.id) {
			// Unwritable, so not applied either: what a restart would not
			// know must not count now. The device has no consent of its own.
			deviceRefused = true
			continue
		}
		asOf := p.recordTime(c.kind, c.id, env.ReceivedAt)
		before := p.store.At(c.kind, c.id, asOf)
		if c.kind == consentstore.KindUser {
			if c.ch = u.ForUser(p.store.At(c.kind, c.id, at).Known); c.ch.Named == 0 {
				continue
			}
		}
		p.store.ApplyCarried(c.kind, c.id, at, c.ch)
		if after := p.store.At(c.kind, c.id, asOf); after != before {
			out = append(out, p.consentRecord(c.id, c.kind, after, asOf, env))
		}
	}
	return out, deviceRefused
}

// unguardedMinor reports whether the (hashed) userId's consent says minor
// without guardian consent at the event's time or at its receipt.
func (p *Pipeline) unguardedMinor(user consentstore.Subject, in *policy.Parsed) bool {
	for _, t := range [2]time.Time{in.At, in.Env.ReceivedAt} {
		if c := p.store.InForce(t, user, consentstore.Subject{}, consentstore.Subject{}); c.Known && c.Minor && !c.GuardianConsent {
			return true
		}
	}
	return false
}

// markMinorDevice records that the device of a minor's identify is a
// minor's (without guardian consent: the minor's event was dropped for
// the lack of it), unless the store says so already.
func (p *Pipeline) markMinorDevice(in *policy.Parsed) []*kgo.Record {
	env := &in.Env
	device := env.Event.AnonymousID
	if p.store.KeyTaken(device) {
		return nil // it has no consent of its own to be kept by (recordCarried)
	}
	asOf := p.recordTime(consentstore.KindAnonymous, device, env.ReceivedAt)
	c := p.store.At(consentstore.KindAnonymous, device, asOf)
	if c.Known && c.Minor && !c.GuardianConsent {
		return nil
	}
	c.Known, c.Minor, c.GuardianConsent = true, true, false
	p.store.Apply(consentstore.KindAnonymous, device, asOf, c)
	return []*kgo.Record{p.consentRecord(device, consentstore.KindAnonymous, c, asOf, env)}
}

// recordTime is when a privacy.consent record the enricher writes for a
// subject takes effect: the event's receipt, or the subject's latest
// change if later. Such a record states the whole consent in force then,
// and compaction keeps only the latest record written, so it must not
// predate (and so take back) a change already recorded.
func (p *Pipeline) recordTime(kind consentstore.Kind, id string, receivedAt time.Time) time.Time {
	if _, latest := p.store.Latest(kind, id); latest.After(receivedAt) {
		return latest
	}
	return receivedAt
}

// consentRecord is the privacy.consent record of consent c of subject id
// (an identifier of kind) from asOf on, learnt from an event of env.
func (p *Pipeline) consentRecord(id string, kind consentstore.Kind, c policy.Consent, asOf time.Time, env *event.Envelope) *kgo.Record {
	st := event.ConsentState{SchemaVersion: event.SchemaVersion, Subject: id, Purposes: make(map[string]bool, len(event.Purposes)),
		CrossBorder: c.CrossBorder, Minor: c.Minor, GuardianConsent: c.GuardianConsent,
		UpdatedAt: asOf.UTC(), ReceivedAt: env.ReceivedAt.UTC(), SourceID: env.SourceID, Region: env.Region, Authority: event.AuthorityEvent}
	if kind == consentstore.KindUser {
		st.UserID = id
	} else {
		st.AnonymousID = id
	}
	for i, name := range event.Purposes {
		st.Purposes[name] = c.Purposes&(1<<i) != 0
	}
	value, _ := json.Marshal(st)
	return &kgo.Record{Topic: p.cfg.Topics.Consent.Name, Key: []byte(id), Value: value}
}

// route de-identifies a kept event for events.clean.<region> and, with
// cross-border consent, for the export topic through the gate.
func (p *Pipeline) route(it *item, mem *arena) {
	// A clean event is about as long as the raw one, seldom longer.
	value, subject, err := p.clean.AppendDeidentified(mem.room(len(it.rec.Value)), it.in, it.d, &it.violations)
	if err != nil {
		it.poison = fmt.Errorf("de-identify: %w", err)
		return
	}
	it.clean = mem.record()
	it.clean.Topic = p.cfg.Topics.Clean.Name
	it.clean.Value = mem.take(value)
	it.clean.Key = mem.take(append(mem.room(len(subject)), subject...))
	if !it.d.Export || p.export == nil {
		return
	}
	x, err := policy.Export(it.in, it.d, p.export)
	switch {
	case errors.Is(err, policy.ErrGateRefused):
		// The in-region copy stands; the export must not leave.
		it.gate = err
		it.export = kafkax.DeadLetter(it.rec, p.cfg.Topics.DLQ.Name, stage, dropGateRefused, err)
		return
	case err != nil:
		it.poison = fmt.Errorf("de-identify for export: %w", err)
		return
	}
	it.export = p.exportRecord(x)
}

// exportRecord is the only way onto the export topic, and it takes only
// what the cross-border gate let through.
func (p *Pipeline) exportRecord(x policy.Exportable) *kgo.Record {
	return &kgo.Record{Topic: p.cfg.Export.Topic.Name, Key: x.Key(), Value: x.Value()}
}
