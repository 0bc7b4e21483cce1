// Package enricher is the bench tool's enricher benchmark (go run
// ./scripts/bench enricher). It measures the enricher's throughput against what the
// broker allows a consume-then-produce loop on the same machine. It is a
// benchmark, not a test: it prints figures and judges nothing but the
// sanity of its own run.
//
// One run creates fresh topics (enricherbench.<run>.*: raw, baseline,
// clean, export and dead-letter, consent, erasures), produces -subjects
// consent states (analytics granted; every third subject also cross-border)
// and -events raw envelopes as the collector writes them (browser context
// with device ids, IP and user agent, properties holding an e-mail address
// to scrub; half the subjects signed in), then runs -rounds rounds of four
// phases over the same raw records:
//
//   - baseline: a plain franz-go consumer group (new group each round)
//     reading the raw topic from the start and producing every value
//     unchanged to the baseline topic, asynchronously, with no transactions
//     and no transform; timed from the first fetch that returned records to
//     the acknowledgement of the last record.
//   - passthrough: the same copy exactly once, as the enricher moves
//     records: a GroupTransactSession, one transaction per poll of the
//     enricher's max_poll_records, no transform. What separates it from the
//     baseline is what transactions cost; what separates the enricher from
//     it is the enricher's own work.
//   - floor: the passthrough writing the enricher's records (every event
//     to the clean topic, a third to the export topic too) and computing
//     the keyed pseudonyms the enricher's profiles compute, on every core,
//     reading no JSON: what no enricher of this policy can skip, so
//     floor/baseline bounds what any enricher can reach here.
//   - enricher: enricher/pipeline as configured by pipeline.Default() (new
//     group and transactional id each round) on the run's topics: consent
//     store rebuilt from the consent topic, one transaction per batch,
//     de-identification with the in-region profile and, with cross-border
//     consent, the export profile behind the gate. Timed from Start
//     returning (the rebuild is behind it) until enricher_events_in_total,
//     which counts records of committed transactions, reaches -events.
//
// Baseline and enricher alternate, so drift of the shared machine shows as
// a change between rounds rather than as a difference between them. The
// report gives events/s of each and their ratio (the goal: enricher at
// least 0.5 of the baseline), the enricher from its first fetch too (the
// baseline's own starting point), CPU per event of this process and of the
// broker, the consent store rebuild time (enricher_consent_store_rebuild_seconds)
// and the enricher's kept/exported/dropped counts as a check (every event
// kept, about a third exported). Every topic and consumer group it created
// is deleted at the end, also after an error or Ctrl-C.
//
// Usage, from the repository root with Kafka running (scripts/deps.sh up):
//
//	go run ./scripts/bench enricher [-events 200000] [-subjects 20000] [-rounds 2]
//	go run ./scripts/bench enricher -cpuprofile /tmp/enricher.pprof   # last round's enricher phase
//	go tool pprof -top /tmp/enricher.pprof
package enricher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// options are the benchmark's flags.
type options struct {
	benchkit.BrokerFlags
	events         int
	subjects       int
	rounds         int
	maxPollRecords int
	phaseTimeout   time.Duration
	cpuProfile     string
	verbose        bool
}

// Run runs the benchmark with its flags, args.
func Run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	return run(ctx, o)
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := benchkit.NewFlagSet("enricher")
	o.Define(fs)
	fs.IntVar(&o.events, "events", 200000, "raw events per phase (1000-5000000)")
	fs.IntVar(&o.subjects, "subjects", 20000, "distinct subjects, each with a consent state (1-1000000)")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds of baseline, passthrough, floor and enricher (1-10)")
	fs.IntVar(&o.maxPollRecords, "max-poll-records", 0, "the enricher's max_poll_records (records per transaction); 0 keeps pipeline.Default()'s")
	fs.DurationVar(&o.phaseTimeout, "phase-timeout", 5*time.Minute, "bound on each phase")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the last round's enricher phase (after Start) to this file")
	fs.BoolVar(&o.verbose, "v", false, "show the enricher's info logs (warnings and errors are always shown)")
	return o, benchkit.Parse(fs, args, func() error {
		// The bench floods what it talks to, so it only talks to loopback.
		if err := o.Validate(); err != nil {
			return err
		}
		var l benchkit.Limits
		l.Int("events", o.events, 1000, 5000000)
		l.Int("subjects", o.subjects, 1, 1000000)
		l.Int("rounds", o.rounds, 1, 10)
		l.Check(o.maxPollRecords >= 0, "-max-poll-records %d: must not be negative", o.maxPollRecords)
		l.Check(o.phaseTimeout >= 10*time.Second, "-phase-timeout %v: want at least 10s", o.phaseTimeout)
		return l.Err()
	})
}

// run sets up, measures and always cleans up (topics and groups deleted),
// then prints the report.
func run(ctx context.Context, o options) (err error) {
	runID := fmt.Sprintf("%d-%d", time.Now().Unix(), os.Getpid())
	topics := newBenchTopics(runID)
	adm, err := benchkit.NewAdmin(o.Brokers, "enricherbench-admin")
	if err != nil {
		return err
	}
	defer adm.Close()
	var groups []string
	defer func() {
		// On a fresh context: ctx may be what ended the run.
		err = errors.Join(err, cleanUp(adm, topics.names(), groups))
	}()

	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	benchkit.Progress("run %s: %d events, %d subjects, %d rounds; topics %s%s.*", runID, o.events, o.subjects, o.rounds, topicPrefix, runID)
	if err := createTopics(ctx, o.Brokers, topics, log); err != nil {
		return err
	}
	setupStart := time.Now()
	gen := newEventGen(runID, o.subjects, time.Now().UTC())
	if err := produceConsent(ctx, o.Brokers, topics.consent.Name, gen); err != nil {
		return err
	}
	bytes, err := produceEvents(ctx, o.Brokers, topics.raw.Name, gen, o.events)
	if err != nil {
		return err
	}
	benchkit.Progress("produced %d consent states and %d events (%.0f bytes each on average) in %v",
		o.subjects, o.events, float64(bytes)/float64(o.events), time.Since(setupStart).Round(time.Millisecond))

	enricherCfg, err := benchConfig(o, topics, "floor")
	if err != nil {
		return err
	}
	floor, err := newFloorWork(enricherCfg, gen.sample(1000))
	if err != nil {
		return err
	}

	clock := benchkit.CPUClock{cpuSelf: benchkit.Self, cpuKafka: brokerPID(o.Brokers[0])}
	rep := &report{opts: o, runID: runID, eventBytes: float64(bytes) / float64(o.events), kafkaWatched: clock[cpuKafka] > 0,
		background: benchkit.BackgroundLoad(time.Second)}
	for round := 1; round <= o.rounds; round++ {
		r := roundResult{round: round}

		// copyPhase runs a phase that copies the raw records (not the
		// enricher) under a group of its own.
		copyPhase := func(name, what string, run func(group string) (baselineResult, error)) (res baselineResult, cpu benchkit.CPUUsage, err error) {
			group := fmt.Sprintf("%s%s.%s.r%d", topicPrefix, runID, name, round)
			groups = append(groups, group)
			benchkit.Progress("round %d: %s", round, what)
			before := clock.Read()
			if res, err = run(group); err != nil {
				return res, cpu, fmt.Errorf("round %d %s: %w", round, name, err)
			}
			cpu = clock.Read().Since(before)
			benchkit.Progress("  %.0f events/s", res.eventsPerSec())
			return res, cpu, nil
		}
		if r.baseline, r.baselineCPU, err = copyPhase("baseline", "baseline", func(group string) (baselineResult, error) {
			return runBaseline(ctx, o, topics, group)
		}); err != nil {
			return err
		}
		if r.passthrough, r.passthroughCPU, err = copyPhase("passthrough", "transactional passthrough", func(group string) (baselineResult, error) {
			return runPassthrough(ctx, o, topics, group, nil)
		}); err != nil {
			return err
		}
		if r.floor, r.floorCPU, err = copyPhase("floor", "floor (the enricher's records and pseudonyms, no JSON)", func(group string) (baselineResult, error) {
			return runPassthrough(ctx, o, topics, group, floor)
		}); err != nil {
			return err
		}

		group := fmt.Sprintf("%s%s.enricher.r%d", topicPrefix, runID, round)
		groups = append(groups, group, group+"-erasures") // the latter: its erasure notifier's
		benchkit.Progress("round %d: enricher", round)
		var profile *os.File
		if o.cpuProfile != "" && round == o.rounds {
			if profile, err = os.Create(o.cpuProfile); err != nil {
				return err
			}
		}
		before := clock.Read()
		r.enricher, err = runEnricher(ctx, o, topics, group, profile, func() { before = clock.Read() })
		r.enricherCPU = clock.Read().Since(before)
		if profile != nil {
			err = errors.Join(err, profile.Close())
		}
		if err != nil {
			return fmt.Errorf("round %d enricher: %w", round, err)
		}
		benchkit.Progress("  %.0f events/s (%.0f from the first fetch); consent store rebuilt in %v",
			r.enricher.eventsPerSec(), r.enricher.eventsPerSecFromFetch(), r.enricher.rebuild.Round(time.Millisecond))
		rep.rounds = append(rep.rounds, r)
	}
	rep.print(os.Stdout)
	if o.cpuProfile != "" {
		fmt.Printf("\nCPU profile of round %d's enricher phase: %s (go tool pprof -top %s)\n", o.rounds, o.cpuProfile, o.cpuProfile)
	}
	return rep.check()
}

// startProfile starts a CPU profile into f; nil f does nothing.
func startProfile(f *os.File) (stop func(), err error) {
	if f == nil {
		return func() {}, nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return pprof.StopCPUProfile, nil
}
