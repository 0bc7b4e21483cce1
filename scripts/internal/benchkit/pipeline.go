package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The development pseudonym keys, relative to the repository root: the
// in-region key k1 and the export destination's x1, as `make run` and the
// tests use them.
const (
	DevPseudonymKey = "configs/dev-pseudonym.key"
	DevExportKey    = "configs/dev-export.key"
)

// Destinations: the region the collector and enricher serve (the sink of
// configs/sink.yaml) and the export destination (configs/sink-intl.yaml),
// as the receipts and the sinks' destination label name them.
const (
	DestRegion = "cn"
	DestExport = "intl"
)

// Binaries are the pipeline's three commands, built once per run.
type Binaries struct{ Collector, Enricher, Sink string }

// Run is one run of a benchmark that starts the pipeline's services: its
// connections and names (Infra), the binaries built for it and the
// machine's load before it.
type Run struct {
	*Infra
	Bins Binaries
	// Dir is the run's temporary directory, removed at the end: the
	// binaries and whatever the run writes for the services.
	Dir string
	// Background is the share of the machine busy before any load: other
	// tenants' (BackgroundLoad).
	Background float64
}

// NewRun starts a run of bench: it names it (<unix time>p<pid>) and says
// so, connects (NewInfra), builds the collector, enricher and sink of the
// repository at s.Root, and reads the background load. cl undoes each
// step at the end.
func NewRun(ctx context.Context, bench string, s *StoreFlags, cl *Cleanups) (*Run, error) {
	runID := fmt.Sprintf("%dp%d", time.Now().Unix(), os.Getpid())
	PrefixesOf(bench).Announce(runID)
	kit, err := NewInfra(bench, runID, s.Brokers, s.ClickHouseServers(), cl)
	if err != nil {
		return nil, err
	}
	dir, bins, err := BuildTemp(ctx, bench, s.Root, cl, "./collector", "./enricher", "./sink")
	if err != nil {
		return nil, err
	}
	r := &Run{Infra: kit, Dir: dir, Bins: Binaries{Collector: bins[0], Enricher: bins[1], Sink: bins[2]}}
	r.Background = BackgroundLoad(time.Second)
	Progress("background: %.0f%% of the machine busy before any load", 100*r.Background)
	return r, nil
}

// BuildTemp builds pkgs of the repository at root (Build) into a new
// temporary directory named after bench, which cl removes at the end, and
// returns the directory and the binaries' paths, in the order of pkgs.
func BuildTemp(ctx context.Context, bench, root string, cl *Cleanups, pkgs ...string) (dir string, bins []string, err error) {
	dir, err = os.MkdirTemp("", bench+"-")
	if err != nil {
		return "", nil, err
	}
	cl.Add(func() error { return os.RemoveAll(dir) })
	Progress("building %s", strings.Join(pkgs, " "))
	bins, err = Build(ctx, root, dir, pkgs...)
	return dir, bins, err
}

// Report is what a benchmark measured.
type Report interface {
	// Write writes the report to w, and wherever else it goes, after the
	// run's cleanup, whose outcome cleanupErr is, so the report can say
	// whether it worked. Its error (a goal the run must meet and did not,
	// a file not written) fails the run.
	Write(w io.Writer, cleanupErr error) error
}

// Measure runs bench under ctx bounded by bound (in case something hangs),
// then always the cleanups bench registered (processes stopped, topics,
// groups and databases deleted), then writes the report to stdout if
// bench made one, also after an error: what was measured before it. The
// error is bench's, the report's and the cleanup's, joined.
func Measure[R Report](ctx context.Context, bound time.Duration, bench func(context.Context, *Cleanups) (R, error)) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var cl Cleanups
	rep, err := bench(ctx, &cl)
	cerr := cl.Run()
	var none R
	if any(rep) == any(none) {
		return errors.Join(err, cerr)
	}
	return errors.Join(err, rep.Write(os.Stdout, cerr), cerr)
}

// PipelineSpec says which pipeline a run starts.
type PipelineSpec struct {
	// Tag starts every name of topic, group and database of this pipeline
	// within the run, for a run that starts more than one; "" for none.
	Tag string
	// Export also starts the export destination's sink
	// (configs/sink-intl.yaml) next to the region's.
	Export bool
	// CollectorConfig is the collector's config file (relative to the
	// root or absolute); "" for the shipped configs/collector.yaml.
	CollectorConfig string
	// SinkEnv adds variables to each sink's environment.
	SinkEnv []string
}

// PipelineTopics are a pipeline's topics, named for its run.
type PipelineTopics struct {
	Raw, Consent, Erasures, Requests, Receipts, Identities, Clean, Export, DLQRaw string
	// Notices and DLQ by destination.
	Notices, DLQ map[string]string
}

// Pipeline is the running services of a run and what a benchmark needs
// of them.
type Pipeline struct {
	Collector, Enricher *Service
	Sinks               map[string]*Service // by destination
	HTTPAddr            string              // the collector's public listener
	Topics              PipelineTopics
	Databases           map[string]string // by destination
	Groups              map[string]string // consumer group by service label: enricher, sink cn, sink intl

	Services // in start order
}

// StartPipeline starts the sinks, the enricher and the collector, in that
// order (each loads what the one before it writes), with their configs
// and dev_mode on, as scripts/run.sh does (the demo write keys, the
// development keys and token), on topics, groups, databases and ports of
// r, and waits until each is ready. cl stops them after an error; a
// benchmark stops them itself (Stop) to report how that went.
func StartPipeline(ctx context.Context, r *Run, s *StoreFlags, spec PipelineSpec, cl *Cleanups) (*Pipeline, error) {
	tag := func(name, sep string) string {
		if spec.Tag == "" {
			return name
		}
		return spec.Tag + sep + name
	}
	topic := func(name string) string { return r.Topic(tag(name, ".")) }
	group := func(name string) string { return r.Group(tag(name, "-")) }
	dests := []string{DestRegion}
	if spec.Export {
		dests = append(dests, DestExport)
	}
	t := PipelineTopics{Raw: topic("raw"), Consent: topic("consent"), Erasures: topic("erasures"), Requests: topic("erasure-requests"),
		Receipts: topic("receipts"), Identities: topic("identities"), Clean: topic("clean"), Export: topic("export"), DLQRaw: topic("dlq-raw"),
		Notices: map[string]string{}, DLQ: map[string]string{}}
	p := &Pipeline{Sinks: map[string]*Service{}, Topics: t, Databases: map[string]string{}, Groups: map[string]string{}}
	// The export destination's names even without its sink: the enricher
	// writes its notices anyway and the collector exports from it.
	for _, d := range []string{DestRegion, DestExport} {
		t.Notices[d], t.DLQ[d] = topic("erasures-"+d), topic("dlq-"+d)
		p.Databases[d] = r.Database(tag(d, "_"))
	}
	p.Groups["enricher"] = group("enricher")
	group("enricher-erasures") // the notifier's: <group_id>-erasures
	for _, d := range dests {
		p.Groups["sink "+d] = group("sink-" + d)
		group("sink-" + d + "-erasures") // the erasure worker's
		group("sink-" + d + "-audit")    // the audit loader's (the region's sink only)
	}
	cl.Add(func() error { _ = p.Stop(); return nil }) // after an error; the report carries a normal stop's errors
	var err error
	if p.HTTPAddr, err = FreeAddr(); err != nil {
		return nil, err
	}
	collectorConfig := spec.CollectorConfig
	if collectorConfig == "" {
		collectorConfig = "configs/collector.yaml"
	}
	brokers := strings.Join(s.Brokers, ",")
	pseudonymKey, exportKey := filepath.Join(s.Root, DevPseudonymKey), filepath.Join(s.Root, DevExportKey)
	type start struct {
		bin, name, dest, config string
		env                     []string
	}
	var starts []start
	for _, d := range dests {
		clean, config := t.Clean, "configs/sink.yaml"
		if d == DestExport {
			clean, config = t.Export, "configs/sink-intl.yaml"
		}
		starts = append(starts, start{r.Bins.Sink, "sink", d, config, append([]string{"KAFKA_BROKERS=" + brokers,
			"TOPICS_CLEAN_NAME=" + clean, "TOPICS_DLQ_NAME=" + t.DLQ[d], "TOPICS_ERASURES_NAME=" + t.Notices[d],
			"TOPICS_RECEIPTS_NAME=" + t.Receipts, "GROUP_ID=" + p.Groups["sink "+d], "DATABASE=" + p.Databases[d],
			"CLICKHOUSE_ADDR=" + s.ClickHouse, "LOG_LEVEL=warn", "DEV_MODE=true"}, spec.SinkEnv...)})
	}
	starts = append(starts,
		start{r.Bins.Enricher, "enricher", "", "configs/enricher.yaml", []string{"KAFKA_BROKERS=" + brokers,
			"TOPICS_RAW_NAME=" + t.Raw, "TOPICS_CLEAN_NAME=" + t.Clean, "TOPICS_DLQ_NAME=" + t.DLQRaw,
			"TOPICS_CONSENT_NAME=" + t.Consent, "TOPICS_ERASURES_NAME=" + t.Erasures, "TOPICS_IDENTITIES_NAME=" + t.Identities,
			"TOPICS_ERASURE_REQUESTS_NAME=" + t.Requests, "TOPICS_ERASURE_NOTICES_NAME=" + t.Notices[DestRegion], "TOPICS_RECEIPTS_NAME=" + t.Receipts,
			"EXPORT_TOPIC_NAME=" + t.Export, "EXPORT_ERASURE_NOTICES_NAME=" + t.Notices[DestExport],
			"GROUP_ID=" + p.Groups["enricher"], "TRANSACTIONAL_ID=" + p.Groups["enricher"] + "-tx",
			"PSEUDONYM_KEY_FILE=" + pseudonymKey, "EXPORT_PSEUDONYM_KEY_FILE=" + exportKey, "LOG_LEVEL=warn", "DEV_MODE=true"}},
		start{r.Bins.Collector, "collector", "", collectorConfig, []string{"KAFKA_BROKERS=" + brokers,
			"TOPICS_RAW_NAME=" + t.Raw, "TOPICS_CONSENT_NAME=" + t.Consent, "TOPICS_ERASURES_NAME=" + t.Erasures,
			"TOPICS_RECEIPTS_NAME=" + t.Receipts, "TOPICS_IDENTITIES_NAME=" + t.Identities, "TOPICS_ERASURE_REQUESTS_NAME=" + t.Requests,
			"PRIVACY_PSEUDONYM_KEY_FILE=" + pseudonymKey, "PRIVACY_EXPORT_ABROAD_PSEUDONYM_KEY_FILE=" + exportKey,
			"PRIVACY_EXPORT_CLICKHOUSE_ADDR=" + s.ClickHouse, "PRIVACY_EXPORT_DATABASE=" + p.Databases[DestRegion],
			"PRIVACY_EXPORT_ABROAD_CLICKHOUSE_ADDR=" + s.ClickHouse, "PRIVACY_EXPORT_ABROAD_DATABASE=" + p.Databases[DestExport],
			"HTTP_LISTEN=" + p.HTTPAddr, "LOG_LEVEL=warn", "DEV_MODE=true"}},
	)
	for _, st := range starts {
		label := st.name
		if st.dest != "" {
			label += " " + st.dest
		}
		Progress("starting %s (%s)", label, st.config)
		env := append(slices.Clone(s.Overlay[strings.ToUpper(st.name)]), st.env...)
		svc, err := StartServiceConfig(st.bin, s.Root, st.name, st.config, env...)
		if err != nil {
			return nil, err
		}
		p.Add(svc)
		if _, err := svc.WaitReady(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		switch {
		case st.dest != "":
			p.Sinks[st.dest] = svc
		case st.name == "enricher":
			p.Enricher = svc
		default:
			p.Collector = svc
		}
	}
	return p, nil
}

// WriteFiles writes a report's files (by name) into dir, which it creates
// if need be.
func WriteFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// MeasureOrCheck is what a benchmark of the pipeline's services does once
// its flags are parsed: with -check (s.Check), list what earlier runs of
// bench left behind (CheckLeftovers); else Measure within bound.
func MeasureOrCheck[R Report](ctx context.Context, bench string, s *StoreFlags, bound time.Duration, run func(context.Context, *Cleanups) (R, error)) error {
	if s.Check {
		return CheckLeftovers(bench, s.Brokers, s.ClickHouseServers())
	}
	return Measure(ctx, bound, run)
}
