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
// consent and erasure topics hold, waiting for the transactions open on
// them (other instances' carried consent) to end (consent.sync_timeout),
// so consent recorded before an event was sent is in force for it. An event is kept
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
// enricher_identity_links_total, enricher_identity_links_refused_total{reason},
// enricher_dedup_entries, enricher_catalogue_violations_total{source,event,reason},
// privacy_erasures_notified_total, enricher_erasure_key_mismatches_total,
// enricher_transactions_total{outcome},
// enricher_transaction_duration_seconds, enricher_commit_duration_seconds,
// enricher_consumer_lag_records, enricher_user_agents_bounded_total{reason},
// the consent store's enricher_consent_* metrics, and franz-go's client
// metrics under enricher_ and enricher_consent_.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/identity"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/policy"
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
