package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
	"strings"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// Drop reasons beyond the consent rules' own (policy.DropReason).
const (
	dropDuplicate   = "duplicate"
	dropPoison      = "poison"
	dropGateRefused = "gate_refused"
)

var dropReasons = []string{string(policy.DropNoConsent), string(policy.DropDNT), string(policy.DropGPC),
	string(policy.DropMinor), string(policy.DropSuppressed), dropDuplicate, dropPoison, dropGateRefused}

type metrics struct {
	in                  prometheus.Counter
	out                 *prometheus.CounterVec
	dropped             *prometheus.CounterVec
	purposes            *prometheus.CounterVec
	defaultGrants       *prometheus.CounterVec
	dedupEntries        prometheus.Gauge
	transactions        *prometheus.CounterVec
	transactionDuration prometheus.Histogram
	commitDuration      prometheus.Histogram
	identityLinks       prometheus.Counter
	linksRefused        *prometheus.CounterVec
	carriedRefused      prometheus.Counter
	carriedWritten      prometheus.Counter
	erasuresNotified    prometheus.Counter
	userAgentsBounded   *prometheus.CounterVec
	// erasureKeyMismatches counts erasure requests whose key check is not
	// the enricher's (notifier.sameKey).
	erasureKeyMismatches prometheus.Counter
}

// Why a kept event's user agent was not generalized whole, the values of
// the reason label of enricher_user_agents_bounded_total.
const (
	// uaTruncated: longer than event.MaxUserAgentBytes, generalized from
	// its first bytes.
	uaTruncated = "truncated"
	// uaUnparsed: shaped to make the parser slow
	// (policy.ParseableUserAgent), generalized to device class other.
	uaUnparsed = "unparsed"
	// uaOverBudget: not in the parser's cache when the parses of the
	// second were spent (user_agent_parses_per_second), generalized to
	// device class other; counted once per destination.
	uaOverBudget = "over_budget"
)

// Why an identify or alias writes no identity link.
const (
	// linkClientAlias: alias links any id to any userId, so only a server
	// source may send one.
	linkClientAlias = "client_alias"
	// linkEventDropped: links come only from events that were kept.
	linkEventDropped = "event_dropped"
	// linkClientRelink: a client may not move a device already linked to
	// another user.
	linkClientRelink = "client_relink"
)

func newMetrics(reg prometheus.Registerer, defaultSources []string) *metrics {
	m := &metrics{
		in: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "enricher_events_in_total",
			Help: "Raw records consumed in committed transactions.",
		}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_events_out_total",
			Help: "Events produced in committed transactions, by route: clean (events.clean.<region>) or export (events.export.<dest>).",
		}, []string{"route"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_events_dropped_total",
			Help: "Events not produced to a route, by reason: no_consent, dnt, gpc, minor, suppressed, duplicate, poison (to the DLQ), gate_refused (export refused by the last check, to the DLQ).",
		}, []string{"reason"}),
		purposes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_events_kept_by_purpose_total",
			Help: "Events kept, by each purpose they are kept for (an event counts once per purpose).",
		}, []string{"purpose"}),
		defaultGrants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_consent_default_grants_total",
			Help: "Events kept only because config grants their source default purposes (consent.defaults), by source.",
		}, []string{"source"}),
		dedupEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "enricher_dedup_entries",
			Help: "Events remembered for de-duplication (dedup_window, dedup_max_entries).",
		}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_transactions_total",
			Help: "Transactions by outcome: committed, aborted (the batch is consumed again) or failed (the enricher stops).",
		}, []string{"outcome"}),
		transactionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "enricher_transaction_duration_seconds",
			Help:    "Time from beginning a batch's transaction to its end, commit or abort.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "enricher_commit_duration_seconds",
			Help:    "Time to end a transaction (flush, commit offsets, commit or abort).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		identityLinks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "enricher_identity_links_total",
			Help: "Identity links (identify, alias) written to privacy.identities in committed transactions.",
		}),
		linksRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_identity_links_refused_total",
			Help: "Identify and alias events that wrote no identity link, by reason: client_alias (an alias from a client source), client_relink (a client's identify of a device linked to another user), event_dropped (the event itself was not kept).",
		}, []string{"reason"}),
		carriedRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "enricher_consent_carried_refused_total",
			Help: "Events whose carried consent granted a userId purposes its client source may not grant: the grants were ignored, the event judged without them.",
		}),
		carriedWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "enricher_consent_carried_written_total",
			Help: "privacy.consent records the enricher wrote in committed transactions: consent carried in events, and devices marked a minor's.",
		}),
		erasuresNotified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privacy_erasures_notified_total",
			Help: "Erasure requests passed on as notices to every region and export destination.",
		}),
		erasureKeyMismatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "enricher_erasure_key_mismatches_total",
			Help: "Erasure requests the collector wrote under an in-region pseudonym key other than the enricher's (its exports and receipts miss the subject's rows; the enricher suppresses under its own keys regardless).",
		}),
		userAgentsBounded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_user_agents_bounded_total",
			Help: "Kept events whose user agent the parser did not read whole, by reason: truncated (longer than 512 bytes, generalized from its first 512), unparsed (more than 32 semicolons, device class other), over_budget (not cached when user_agent_parses_per_second was spent, device class other; once per destination).",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.in, m.out, m.dropped, m.purposes, m.defaultGrants, m.dedupEntries, m.transactions, m.transactionDuration, m.commitDuration,
		m.identityLinks, m.linksRefused, m.carriedRefused, m.carriedWritten, m.erasuresNotified,
		m.userAgentsBounded, m.erasureKeyMismatches)
	for _, r := range []string{uaTruncated, uaUnparsed, uaOverBudget} {
		m.userAgentsBounded.WithLabelValues(r)
	}
	for _, r := range []string{linkClientAlias, linkClientRelink, linkEventDropped} {
		m.linksRefused.WithLabelValues(r)
	}
	for _, r := range []string{"clean", "export"} {
		m.out.WithLabelValues(r)
	}
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(r)
	}
	for _, p := range event.Purposes {
		m.purposes.WithLabelValues(p)
	}
	for _, s := range defaultSources {
		m.defaultGrants.WithLabelValues(s)
	}
	for _, o := range []string{"committed", "aborted", "failed"} {
		m.transactions.WithLabelValues(o)
	}
	return m
}

// tally counts one batch; it reaches the metrics only if the batch commits.
type tally struct {
	in, clean, export int
	links             int
	linksRefused      map[string]int
	carriedRefused    int
	carriedWritten    int
	dropped           map[string]int
	purposes          map[string]int
	defaultGrants     map[string]int
	violations        []violation

	// uaTruncated, uaUnparsed and uaOverBudget count kept events by how
	// their user agent was bounded.
	uaTruncated, uaUnparsed, uaOverBudget int
}

func newTally() *tally {
	return &tally{dropped: map[string]int{}, purposes: map[string]int{}, defaultGrants: map[string]int{}, linksRefused: map[string]int{}}
}

func (m *metrics) add(t *tally) {
	m.in.Add(float64(t.in))
	m.out.WithLabelValues("clean").Add(float64(t.clean))
	m.out.WithLabelValues("export").Add(float64(t.export))
	m.identityLinks.Add(float64(t.links))
	for r, n := range t.linksRefused {
		m.linksRefused.WithLabelValues(r).Add(float64(n))
	}
	m.carriedRefused.Add(float64(t.carriedRefused))
	m.carriedWritten.Add(float64(t.carriedWritten))
	m.userAgentsBounded.WithLabelValues(uaTruncated).Add(float64(t.uaTruncated))
	m.userAgentsBounded.WithLabelValues(uaUnparsed).Add(float64(t.uaUnparsed))
	m.userAgentsBounded.WithLabelValues(uaOverBudget).Add(float64(t.uaOverBudget))
	for r, n := range t.dropped {
		m.dropped.WithLabelValues(r).Add(float64(n))
	}
	for p, n := range t.purposes {
		m.purposes.WithLabelValues(p).Add(float64(n))
	}
	for s, n := range t.defaultGrants {
		// Cloned: a new label is kept for good, and s shares the memory of
		// the whole fetch it came in.
		m.defaultGrants.WithLabelValues(strings.Clone(s)).Add(float64(n))
	}
}
