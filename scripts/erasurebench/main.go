// Command erasurebench measures erasure under load: how long it takes from
// an erasure request to the verified deletion of the subject's rows in
// every destination, while the whole pipeline ingests a steady stream of
// events, and how many ClickHouse mutations the sinks issue for it. It is a
// benchmark, not a test: it prints figures and judges only that every
// request was carried out and that no row of an erased subject remains.
//
// The collector, enricher and two sinks (configs/sink.yaml, the region cn,
// and configs/sink-intl.yaml, the export destination intl) are built from
// the repository and started as processes with the shipped configs, every
// topic, consumer group, transactional id and database renamed for this
// run by environment variables, and the collector's privacy admin API
// switched on for the dev operator (configs/dev-operator.token) through a
// temporary copy of configs/collector.yaml, since privacy.operators cannot
// be set by environment. The pseudonym keys are the dev keys
// (configs/dev-pseudonym.key, k1; configs/dev-export.key, x1).
//
// Then:
//
//  1. Consent (analytics, cross-border) for -subjects subjects through
//     /v1/consent, since the enricher fails closed. Each subject has a
//     userId and an anonymousId.
//  2. Load: /v1/batch requests of -batch events at -rate events/s (open
//     loop, paced, -senders concurrent clients) of random subjects, every
//     event with userId and anonymousId, one in 20 an identify (which links
//     the anonymousId to the userId, so the erasure follows the device),
//     the rest page views and product views. It runs until every erasure
//     is done, erased subjects included, as their devices would.
//  3. After -warmup, -erasures erasure requests (POST
//     /v1/privacy/erasures, by userId) spread evenly over -spread, each of
//     a distinct subject that has had an event accepted.
//  4. privacy.receipts of the run is followed from the start: the
//     collector's receipt (requestedAt), the enricher's (notified, with the
//     destinations) and each sink's (deleted: at, rows, mutations). A
//     request is done once each destination the enricher named has a
//     deleted receipt for every subject of the request; its latency is the
//     latest such `at` minus requestedAt (the max over both destinations).
//     Receipt times come from the services' clocks, on this machine.
//  5. Once all are done (or -drain after the last request), the load stops;
//     the bench waits until the pipeline has loaded what was accepted
//     (the enricher's and sinks' counters), then checks that ClickHouse
//     holds no row of any erased subject in either database (their
//     pseudonyms computed with the dev keys, matched on subject,
//     user_pseudonym and anonymous_pseudonym), and, as a control that the
//     pseudonyms are right, that it holds rows of subjects not erased. A
//     few requests are cross-checked through GET /v1/privacy/erasures/{id}.
//
// It reports the erasure latency p50/p99/max (and its legs: request to the
// enricher's notice, notice to each destination's verified deletion), the
// mutations per destination (privacy_erasure_mutations_total of each
// sink), rows deleted, the events/s achieved, requests not done (must be
// 0), the final check (must be 0 rows), and the machine's background load
// before the run. It exits 1 when a request was not done, a row remains or
// the control found nothing.
//
// Everything created (topics, consumer groups, databases, processes, the
// temporary directory) is removed at the end, also after an error or
// Ctrl-C; -check lists what an interrupted run left behind. The enricher's
// transactional id stays on the broker until it expires it
// (transactional.id.expiration.ms).
//
// How to read it: the machine is shared and has 2 cores that the bench, the
// four services, ClickHouse and Kafka all compete for; the figures are
// absolute, so read them next to the background load. The SLO is p99 under
// 60 s from request to verified deletion in every destination.
//
// Usage, from the repository root with Kafka and ClickHouse running
// (scripts/deps.sh up):
//
//	go run ./scripts/erasurebench [-rate 5000] [-erasures 1000] [-spread 60s] [-subjects 5000]
//	go run ./scripts/erasurebench -erasures 100 -spread 10s -rate 1000
//	go run ./scripts/erasurebench -check
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// options are the command's flags.
type options struct {
	brokers    []string
	clickhouse string
	root       string
	writeKey   string
	consentKey string
	tokenFile  string

	rate     int
	batch    int
	senders  int
	subjects int

	erasures     int
	spread       time.Duration
	warmup       time.Duration
	drain        time.Duration
	statusChecks int

	check bool
}

func main() {
	benchkit.Main(bench, parseFlags, func(o options) bool { return o.check }, checkLeftovers, run)
}

// checkLeftovers is -check.
func checkLeftovers(o options) error {
	return benchkit.CheckLeftovers(bench, o.brokers, o.clickhouse)
}

func parseFlags() (options, error) {
	var o options
	stores := benchkit.StoreFlags()
	flag.StringVar(&o.root, "root", ".", "repository root (holds ./collector, ./enricher, ./sink and configs/)")
	flag.StringVar(&o.writeKey, "write-key", "demo-write-key", "collector write key of the events")
	flag.StringVar(&o.consentKey, "consent-write-key", "demo-backend-write-key", "collector write key of the consent updates: a server source's (they grant userIds cross-border transfer)")
	flag.StringVar(&o.tokenFile, "token-file", "configs/dev-operator.token", "operator token of the privacy admin API (the dev operator's), relative to -root")

	flag.IntVar(&o.rate, "rate", 5000, "events/s posted to the collector while the erasures run (100-50000)")
	flag.IntVar(&o.batch, "batch", 20, "events per /v1/batch request (1-100)")
	flag.IntVar(&o.senders, "senders", 32, "concurrent clients posting the events (1-256)")
	flag.IntVar(&o.subjects, "subjects", 5000, "subjects the events are about, each with consent recorded first (100-100000; at least -erasures + 100, the rest are the final check's control)")

	flag.IntVar(&o.erasures, "erasures", 1000, "erasure requests, each of a distinct subject (1-10000)")
	flag.DurationVar(&o.spread, "spread", 60*time.Second, "the erasure requests are spread evenly over this (1s-10m)")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "load before the first erasure, so the subjects have rows (1s-1m)")
	flag.DurationVar(&o.drain, "drain", 90*time.Second, "after the last erasure request, wait at most this long for all to be done (10s-10m)")
	flag.IntVar(&o.statusChecks, "status-checks", 5, "requests cross-checked through GET /v1/privacy/erasures/{id} at the end (0-100)")

	flag.BoolVar(&o.check, "check", false, "only list topics, groups and databases left by earlier runs; exit 1 if any")
	flag.Parse()

	var err error
	if o.brokers, o.clickhouse, err = stores(); err != nil {
		return o, err
	}
	// Bounds keep one run within minutes and inside the machine's memory.
	switch {
	case o.rate < 100 || o.rate > 50000:
		return o, fmt.Errorf("-rate %d: want 100-50000", o.rate)
	case o.batch < 1 || o.batch > 100:
		return o, fmt.Errorf("-batch %d: want 1-100", o.batch)
	case o.senders < 1 || o.senders > 256:
		return o, fmt.Errorf("-senders %d: want 1-256", o.senders)
	case o.subjects < 100 || o.subjects > 100000:
		return o, fmt.Errorf("-subjects %d: want 100-100000", o.subjects)
	case o.erasures < 1 || o.erasures > 10000:
		return o, fmt.Errorf("-erasures %d: want 1-10000", o.erasures)
	case o.erasures+100 > o.subjects:
		return o, fmt.Errorf("-erasures %d: want at most -subjects (%d) minus 100, the subjects left are the final check's control", o.erasures, o.subjects)
	case o.spread < time.Second || o.spread > 10*time.Minute:
		return o, fmt.Errorf("-spread %v: want 1s-10m", o.spread)
	case float64(o.erasures)/o.spread.Seconds() > 1000:
		return o, fmt.Errorf("-erasures %d over -spread %v is more than 1000 requests/s: spread them wider", o.erasures, o.spread)
	case o.warmup < time.Second || o.warmup > time.Minute:
		return o, fmt.Errorf("-warmup %v: want 1s-1m", o.warmup)
	case o.drain < 10*time.Second || o.drain > 10*time.Minute:
		return o, fmt.Errorf("-drain %v: want 10s-10m", o.drain)
	case o.statusChecks < 0 || o.statusChecks > 100:
		return o, fmt.Errorf("-status-checks %d: want 0-100", o.statusChecks)
	}
	if err := benchkit.CheckRoot(o.root, "configs/collector.yaml", "configs/sink-intl.yaml", devPseudonymKey, devExportKey); err != nil {
		return o, err
	}
	root, err := filepath.Abs(o.root)
	if err != nil {
		return o, err
	}
	o.root = root
	if !filepath.IsAbs(o.tokenFile) {
		o.tokenFile = filepath.Join(o.root, o.tokenFile)
	}
	return o, nil
}

// run benchmarks, then always cleans up (processes stopped, topics, groups
// and databases deleted) before printing the report, so the report can say
// the cleanup worked.
func run(ctx context.Context, o options) error {
	// A hard bound on the whole run, in case something hangs: building,
	// starting, consent and stopping take a few minutes at worst.
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute+o.warmup+o.spread+o.drain)
	defer cancel()

	var cl benchkit.Cleanups
	rep, err := benchmark(ctx, o, &cl)
	cerr := cl.Run()
	if rep != nil {
		rep.cleanupErr = cerr
		rep.print(os.Stdout) // also what was measured before an error
	}
	if err != nil {
		return errors.Join(err, cerr)
	}
	if err := rep.verdict(); err != nil {
		return errors.Join(err, cerr)
	}
	return cerr
}

func benchmark(ctx context.Context, o options, cl *benchkit.Cleanups) (*report, error) {
	runID := fmt.Sprintf("%dp%d", time.Now().Unix(), os.Getpid())
	rep := &report{opts: o, runID: runID, nproc: runtime.NumCPU()}
	benchkit.PrefixesOf(bench).Announce(runID)

	keys, err := loadKeys(o.root)
	if err != nil {
		return nil, err
	}
	token, err := os.ReadFile(o.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("-token-file: %w", err)
	}
	kit, err := benchkit.NewInfra(bench, runID, o.brokers, o.clickhouse, cl)
	if err != nil {
		return nil, err
	}
	e := &infra{Infra: kit, o: o}
	dir, bins, err := benchkit.BuildTemp(ctx, bench, o.root, cl, "./collector", "./enricher", "./sink")
	if err != nil {
		return nil, err
	}
	e.bins = binaries{collector: bins[0], enricher: bins[1], sink: bins[2]}
	e.tmp = dir
	rep.background = benchkit.BackgroundLoad(time.Second)
	benchkit.Progress("background: %.0f%% of the machine busy before any load", 100*rep.background)

	p, err := startPipeline(ctx, e, cl)
	if err != nil {
		return rep, err
	}
	rep.databases = p.databases
	err = measure(ctx, e, p, keys, strings.TrimSpace(string(token)), rep)
	rep.stopErr = p.Stop()
	if err == nil {
		err = ctx.Err()
	}
	return rep, err
}
