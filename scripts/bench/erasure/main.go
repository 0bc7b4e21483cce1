// Package erasure is the bench tool's erasure benchmark (go run
// ./scripts/bench erasure). It measures erasure under load: how long it takes from
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
//	go run ./scripts/bench erasure [-rate 5000] [-erasures 1000] [-spread 60s] [-subjects 5000]
//	go run ./scripts/bench erasure -erasures 100 -spread 10s -rate 1000
//	go run ./scripts/bench erasure -check
package erasure

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// options are the benchmark's flags.
type options struct {
	benchkit.StoreFlags
	tokenFile string

	rate     int
	batch    int
	senders  int
	subjects int

	erasures     int
	spread       time.Duration
	warmup       time.Duration
	drain        time.Duration
	statusChecks int
}

// Run runs the benchmark with its flags, args.
func Run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	// A hard bound on the whole run, in case something hangs: building,
	// starting, consent and stopping take a few minutes at worst.
	return benchkit.MeasureOrCheck(ctx, bench, &o.StoreFlags, 8*time.Minute+o.warmup+o.spread+o.drain, func(ctx context.Context, cl *benchkit.Cleanups) (*report, error) {
		return benchmark(ctx, o, cl)
	})
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := benchkit.NewFlagSet("erasure")
	o.Define(fs, "./collector, ./enricher, ./sink and configs/")
	fs.StringVar(&o.tokenFile, "token-file", "configs/dev-operator.token", "operator token of the privacy admin API (the dev operator's), relative to -root")

	fs.IntVar(&o.rate, "rate", 5000, "events/s posted to the collector while the erasures run (100-50000)")
	fs.IntVar(&o.batch, "batch", 20, "events per /v1/batch request (1-100)")
	fs.IntVar(&o.senders, "senders", 32, "concurrent clients posting the events (1-256)")
	fs.IntVar(&o.subjects, "subjects", 5000, "subjects the events are about, each with consent recorded first (100-100000; at least -erasures + 100, the rest are the final check's control)")

	fs.IntVar(&o.erasures, "erasures", 1000, "erasure requests, each of a distinct subject (1-10000)")
	fs.DurationVar(&o.spread, "spread", 60*time.Second, "the erasure requests are spread evenly over this (1s-10m)")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "load before the first erasure, so the subjects have rows (1s-1m)")
	fs.DurationVar(&o.drain, "drain", 90*time.Second, "after the last erasure request, wait at most this long for all to be done (10s-10m)")
	fs.IntVar(&o.statusChecks, "status-checks", 5, "requests cross-checked through GET /v1/privacy/erasures/{id} at the end (0-100)")
	return o, benchkit.Parse(fs, args, func() error {
		if err := o.Validate(); err != nil {
			return err
		}
		var l benchkit.Limits
		l.Int("rate", o.rate, 100, 50000)
		l.Int("batch", o.batch, 1, 100)
		l.Int("senders", o.senders, 1, 256)
		l.Int("subjects", o.subjects, 100, 100000)
		l.Int("erasures", o.erasures, 1, 10000)
		l.Check(o.erasures+100 <= o.subjects, "-erasures %d: want at most -subjects (%d) minus 100, the subjects left are the final check's control", o.erasures, o.subjects)
		l.Duration("spread", o.spread, time.Second, 10*time.Minute)
		l.Check(float64(o.erasures)/o.spread.Seconds() <= 1000, "-erasures %d over -spread %v is more than 1000 requests/s: spread them wider", o.erasures, o.spread)
		l.Duration("warmup", o.warmup, time.Second, time.Minute)
		l.Duration("drain", o.drain, 10*time.Second, 10*time.Minute)
		l.Int("status-checks", o.statusChecks, 0, 100)
		if err := l.Err(); err != nil {
			return err
		}
		if err := benchkit.CheckRoot(o.Root, "configs/collector.yaml", "configs/sink-intl.yaml", benchkit.DevPseudonymKey, benchkit.DevExportKey); err != nil {
			return err
		}
		root, err := filepath.Abs(o.Root)
		if err != nil {
			return err
		}
		o.Root = root
		if !filepath.IsAbs(o.tokenFile) {
			o.tokenFile = filepath.Join(o.Root, o.tokenFile)
		}
		return nil
	})
}

// Write prints the report after the cleanup; a run that went to its end
// fails unless every request was done and no row of an erased subject
// remains (verdict).
func (r *report) Write(w io.Writer, cleanupErr error) error {
	r.cleanupErr = cleanupErr
	r.print(w) // also what was measured before an error
	if !r.completed {
		return nil
	}
	return r.verdict()
}

func benchmark(ctx context.Context, o options, cl *benchkit.Cleanups) (*report, error) {
	keys, err := loadKeys(o.Root)
	if err != nil {
		return nil, err
	}
	token, err := os.ReadFile(o.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("-token-file: %w", err)
	}
	run, err := benchkit.NewRun(ctx, bench, &o.StoreFlags, cl)
	if err != nil {
		return nil, err
	}
	rep := &report{opts: o, runID: run.RunID, nproc: runtime.NumCPU(), background: run.Background}
	e := &infra{Run: run, o: o}
	collectorYAML, err := collectorConfig(e)
	if err != nil {
		return rep, err
	}
	p, err := benchkit.StartPipeline(ctx, run, &o.StoreFlags, benchkit.PipelineSpec{Export: true, CollectorConfig: collectorYAML}, cl)
	if err != nil {
		return rep, err
	}
	rep.databases = p.Databases
	err = measure(ctx, e, p, keys, strings.TrimSpace(string(token)), rep)
	rep.stopErr = p.Stop()
	if err == nil {
		err = ctx.Err()
	}
	rep.completed = err == nil
	return rep, err
}
