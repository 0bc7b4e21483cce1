// Package consent is the bench tool's consent store benchmark (go run
// ./scripts/bench consent). It measures what the enricher's consent store costs:
//
//   - in-memory: -subjects subjects (uuid-like 36-character ids; every
//     tenth with 3 consent changes of history, the rest with one) applied
//     to a consentstore.Store, timed; then, after runtime.GC(), the heap in
//     use and the process's RSS (VmRSS), both per million subjects, and the
//     peak RSS (VmHWM) of the run. RSS after GC still holds heap the
//     runtime freed but has not yet returned to the OS; the "RSS returned"
//     column is after debug.FreeOSMemory, the floor a long-running
//     enricher settles to.
//   - rebuild: a fresh pair of topics on -kafka (consent compacted, with
//     -partitions partitions, and erasures), -rebuild-subjects subjects'
//     ConsentState records in the same mix (plus one erasure per thousand
//     subjects) produced with a fast franz-go producer (zstd, linger), then
//     NewFollower+Start timed: the start-up rebuild of an enricher. It
//     reports records/s and the RSS of the process that rebuilt. The topics
//     are deleted afterwards, also on Ctrl-C.
//
// Each part runs in a child process of its own (this binary again, as
// `bench consent -part ...`), so one
// part's memory does not show in the other's RSS and the rebuild's figures
// do not include the producer's buffers.
//
// Usage, from the repository root with Kafka running (scripts/deps.sh up):
//
//	go run ./scripts/bench consent [-subjects 10000000] [-rebuild-subjects 1000000] [-kafka 127.0.0.1:9092]
//	go run ./scripts/bench consent -subjects 0            # rebuild only
//	go run ./scripts/bench consent -rebuild-subjects 0    # in-memory only
//
// The machine is shared with the broker (and whatever else runs), so the
// times drift from run to run; the memory figures are stable.
package consent

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

type options struct {
	subjects        int
	rebuildSubjects int
	brokers         []string
	partitions      int
	maxHistory      int
	historyEvery    int
	timeout         time.Duration
	cpuProfile      string

	args []string // as given, for the children

	// Set by the parent for a child.
	part                    string
	consentTopic, erasTopic string
}

// result is what a child reports to the parent, as one JSON line.
type result struct {
	Part          string
	Subjects      int   // subjects generated
	Records       int64 // changes applied (in-memory) or records read (rebuild)
	Took          time.Duration
	HeapBase      uint64 // HeapInuse before, after GC
	HeapInuse     uint64 // HeapInuse after, after GC
	RSSBase       int64  // VmRSS before, after GC, bytes
	RSS           int64  // VmRSS after runtime.GC()
	RSSReturned   int64  // VmRSS after debug.FreeOSMemory()
	PeakRSS       int64  // VmHWM of the child
	StoreSubjects int
	Suppressed    int
	Produce       time.Duration // rebuild: how long producing took (parent)
	ProduceBytes  int64         // rebuild: value bytes produced
}

const resultPrefix = "CONSENTBENCH-RESULT "

// Run runs the benchmark with its flags, args: the parent, which runs
// each part as a child, or with -part a child.
func Run(ctx context.Context, args []string) (err error) {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.part != "" {
		// A child has nothing to clean up: Ctrl-C ends it at once, as it
		// does a process that does not handle signals, while the parent
		// cleans up.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
	}
	if o.part != "" && o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile + "." + o.part)
		if err != nil {
			return err
		}
		defer stop()
	}
	switch o.part {
	case "":
		return orchestrate(ctx, o)
	case "memory":
		return report(measureMemory(o))
	case "rebuild":
		return report(measureRebuild(o))
	default:
		return &benchkit.UsageError{Err: fmt.Errorf("unknown -part %q", o.part)}
	}
}

func parseFlags(args []string) (options, error) {
	o := options{args: args}
	var brokers string
	fs := benchkit.NewFlagSet("consent")
	fs.IntVar(&o.subjects, "subjects", 10_000_000, "subjects for the in-memory part; 0 skips it")
	fs.IntVar(&o.rebuildSubjects, "rebuild-subjects", 1_000_000, "subjects for the Kafka rebuild part; 0 skips it")
	fs.StringVar(&brokers, "kafka", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of the rebuild's consent topic")
	fs.IntVar(&o.maxHistory, "history", 4, "the store's history limit (consentstore.New)")
	fs.IntVar(&o.historyEvery, "history-every", 10, "one subject in this many has 3 consent changes")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on each part")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write each part's CPU profile to this file, suffixed .memory or .rebuild")
	fs.StringVar(&o.part, "part", "", "internal: run one part (memory or rebuild) in this process")
	fs.StringVar(&o.consentTopic, "consent-topic", "", "internal: the rebuild's consent topic")
	fs.StringVar(&o.erasTopic, "erasures-topic", "", "internal: the rebuild's erasures topic")
	return o, benchkit.Parse(fs, args, func() error {
		o.brokers = strings.Split(brokers, ",")
		o.historyEvery = max(o.historyEvery, 1)
		return nil
	})
}

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func report(r result, err error) error {
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Printf("%s%s\n", resultPrefix, b)
	return nil
}

// --- the parent ---------------------------------------------------------

func orchestrate(ctx context.Context, o options) error {
	fmt.Fprintf(os.Stderr, "consentbench: %s, %d CPUs, GOMAXPROCS %d, history limit %d, 1 in %d subjects with 3 changes\n",
		runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), o.maxHistory, o.historyEvery)
	var results []result
	if o.subjects > 0 {
		r, err := runChild(o, "memory")
		if err != nil {
			return fmt.Errorf("in-memory part: %w", err)
		}
		results = append(results, r)
	}
	if o.rebuildSubjects > 0 {
		r, err := rebuild(ctx, o)
		if err != nil {
			printTable(results)
			return fmt.Errorf("rebuild part: %w", err)
		}
		results = append(results, r)
	}
	printTable(results)
	return nil
}

// runChild runs this binary again for one part and returns its result.
func runChild(o options, part string, extra ...string) (result, error) {
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	args := append(append(append([]string{"consent"}, o.args...), "-part="+part), extra...)
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s: %w", part, err)
	}
	for line := range strings.SplitSeq(out.String(), "\n") {
		if js, ok := strings.CutPrefix(line, resultPrefix); ok {
			var r result
			return r, json.Unmarshal([]byte(js), &r)
		}
		if line != "" {
			fmt.Println(line)
		}
	}
	return result{}, fmt.Errorf("%s: the child reported no result", part)
}

// rebuild creates the topics, fills them, has a child rebuild a store
// from them, and deletes them.
func rebuild(ctx context.Context, o options) (result, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.brokers...), kgo.ClientID("consentbench"),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()),
		kgo.ProducerLinger(20*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(200_000),
	)
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	consent, erasures := "consentbench."+run+".consent", "consentbench."+run+".erasures"
	// Delete the topics whatever happens, Ctrl-C (which ends ctx)
	// included.
	defer func() {
		if err := benchkit.DeleteTopicsAndGroups(adm, []string{consent, erasures}, nil); err != nil {
			fmt.Fprintf(os.Stderr, "consentbench: delete topics %s, %s: %v\n", consent, erasures, err)
			return
		}
		fmt.Fprintf(os.Stderr, "consentbench: deleted topics %s, %s\n", consent, erasures)
	}()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for _, t := range []struct {
		name       string
		partitions int32
		configs    map[string]*string
	}{
		{consent, int32(o.partitions), map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}},
		{erasures, 1, nil},
	} {
		if err := benchkit.CreateTopic(ctx, adm, t.name, t.partitions, t.configs); err != nil {
			return result{}, err
		}
	}

	fmt.Fprintf(os.Stderr, "consentbench: producing %d subjects to %s\n", o.rebuildSubjects, consent)
	start := time.Now()
	var failed atomic.Pointer[error]
	var records, valueBytes int64
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	g := newGenerator(o.historyEvery)
	for i := range o.rebuildSubjects {
		for _, ch := range g.changes(i) {
			value, err := json.Marshal(consentState(ch))
			if err != nil {
				return result{}, err
			}
			records++
			valueBytes += int64(len(value))
			cl.Produce(ctx, &kgo.Record{Topic: consent, Key: []byte(ch.subject), Value: value}, done)
		}
		if i%1000 == 1 {
			records++
			cl.Produce(ctx, &kgo.Record{Topic: erasures, Key: []byte(g.id(i)), Value: []byte(`{}`)}, done)
		}
		if p := failed.Load(); p != nil {
			return result{}, fmt.Errorf("produce: %w", *p)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return result{}, fmt.Errorf("flush: %w", err)
	}
	if p := failed.Load(); p != nil {
		return result{}, fmt.Errorf("produce: %w", *p)
	}
	produced := time.Since(start)
	fmt.Fprintf(os.Stderr, "consentbench: produced %d records (%.0f MB of JSON) in %v, %.0f records/s; rebuilding\n",
		records, float64(valueBytes)/1e6, produced.Round(time.Millisecond), float64(records)/produced.Seconds())

	r, err := runChild(o, "rebuild", "-consent-topic="+consent, "-erasures-topic="+erasures)
	if err != nil {
		return result{}, err
	}
	if r.Records != records {
		return r, fmt.Errorf("the rebuild read %d records, %d were produced", r.Records, records)
	}
	r.Subjects, r.Produce, r.ProduceBytes = o.rebuildSubjects, produced, valueBytes
	return r, nil
}

// --- the children --------------------------------------------------------

// baseline collects garbage and reads the heap in use and RSS.
func baseline() (heap uint64, rss int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, bytesOf(benchkit.RSS(benchkit.Self))
}

// after fills r's memory figures once the store is built; store must
// still be referenced afterwards, so it is not collected.
func after(r *result, store *consentstore.Store) {
	r.HeapInuse, r.RSS = baseline()
	debug.FreeOSMemory()
	r.RSSReturned = bytesOf(benchkit.RSS(benchkit.Self))
	r.PeakRSS = bytesOf(benchkit.PeakRSS(benchkit.Self))
	r.StoreSubjects, r.Suppressed = store.Size()
}

// benchKeys key the suppression list, as the enricher's in-region keyring does.
var benchKeys = func() *policy.Keyring {
	k, err := policy.NewKeyring(policy.Key{ID: "b1", Secret: []byte("consentbench-suppression-key-0123456789")})
	if err != nil {
		panic(err)
	}
	return k
}()

func measureMemory(o options) (result, error) {
	r := result{Part: "in-memory", Subjects: o.subjects}
	r.HeapBase, r.RSSBase = baseline()
	store := consentstore.New(o.maxHistory, benchKeys)
	g := newGenerator(o.historyEvery)
	start := time.Now()
	for i := range o.subjects {
		for _, ch := range g.changes(i) {
			store.Apply(consentstore.KindUser, ch.subject, ch.at, ch.consent)
			r.Records++
		}
		if i > 0 && i%2_000_000 == 0 {
			fmt.Fprintf(os.Stderr, "consentbench: applied %d subjects in %v\n", i, time.Since(start).Round(time.Millisecond))
		}
	}
	r.Took = time.Since(start)
	after(&r, store)
	runtime.KeepAlive(store)
	return r, nil
}

func measureRebuild(o options) (result, error) {
	if o.consentTopic == "" || o.erasTopic == "" {
		return result{}, errors.New("-part=rebuild needs -consent-topic and -erasures-topic")
	}
	r := result{Part: "rebuild"}
	r.HeapBase, r.RSSBase = baseline()
	store := consentstore.New(o.maxHistory, benchKeys)
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	start := time.Now()
	f, err := consentstore.NewFollower(&kafkax.Config{Brokers: o.brokers, ClientID: "consentbench-rebuild"},
		o.consentTopic, o.erasTopic, store, reg, "enricher", log)
	if err != nil {
		return r, err
	}
	if err := f.Start(ctx); err != nil {
		_ = f.Shutdown(context.Background())
		return r, err
	}
	r.Took = time.Since(start)
	if err := f.Shutdown(ctx); err != nil {
		return r, err
	}
	r.Records, err = recordsApplied(reg)
	if err != nil {
		return r, err
	}
	after(&r, store)
	runtime.KeepAlive(store)
	return r, nil
}

// recordsApplied sums enricher_consent_records_total over its kinds.
func recordsApplied(reg *prometheus.Registry) (int64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "enricher_consent_records_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return int64(n), nil
}

// --- the data ------------------------------------------------------------

type change struct {
	subject string
	at      time.Time
	consent policy.Consent
}

// generator makes the same subjects and changes for a given index on every
// run: ids shaped like UUIDs (8-4-4-4-12 hex), one subject in historyEvery
// with 3 changes an hour apart.
type generator struct {
	historyEvery int
	base         time.Time
}

func newGenerator(historyEvery int) generator {
	return generator{historyEvery: historyEvery, base: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (g generator) id(i int) string {
	var raw [16]byte
	a, b := splitmix(uint64(i)), splitmix(uint64(i)^0x5bd1e995_5bd1e995)
	for j := range 8 {
		raw[j], raw[8+j] = byte(a>>(8*j)), byte(b>>(8*j))
	}
	raw[6] = raw[6]&0x0f | 0x40 // version 4
	raw[8] = raw[8]&0x3f | 0x80 // variant
	var s [36]byte
	hex.Encode(s[0:8], raw[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], raw[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], raw[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], raw[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], raw[10:16])
	return string(s[:])
}

func (g generator) changes(i int) []change {
	subject := g.id(i)
	h := splitmix(uint64(i) ^ 0xc0ffee)
	at := g.base.Add(time.Duration(h%(180*24*3600)) * time.Second)
	n := 1
	if i%g.historyEvery == 0 {
		n = 3
	}
	out := make([]change, n)
	for j := range n {
		out[j] = change{subject: subject, at: at.Add(time.Duration(j-n+1) * time.Hour),
			consent: policy.Consent{Known: true, Purposes: policy.Purposes((h >> (4 * j)) & 0x0f),
				CrossBorder: h>>40&1 != 0, Minor: h>>41&15 == 0, GuardianConsent: h>>45&1 != 0}}
	}
	return out
}

// consentState is the privacy.consent record of a change, as the
// collector writes it.
func consentState(ch change) event.ConsentState {
	purposes := make(map[string]bool, len(event.Purposes))
	for i, p := range event.Purposes {
		purposes[p] = ch.consent.Purposes&(1<<i) != 0
	}
	return event.ConsentState{SchemaVersion: event.SchemaVersion, Subject: ch.subject, AnonymousID: ch.subject,
		Purposes: purposes, CrossBorder: ch.consent.CrossBorder, Minor: ch.consent.Minor, GuardianConsent: ch.consent.GuardianConsent,
		UpdatedAt: ch.at, ReceivedAt: ch.at.Add(1500 * time.Millisecond), SourceID: "src_web_01", Region: "eu-central"}
}

// --- output --------------------------------------------------------------

// bytesOf turns a reading of this process's memory (benchkit.RSS,
// benchkit.PeakRSS) into bytes, -1 when it failed.
func bytesOf(kib int64, err error) int64 {
	if err != nil {
		return -1
	}
	return kib << 10
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func perMillion(b int64, subjects int) string {
	if subjects == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)/float64(subjects)*1e6)
}

func printTable(results []result) {
	if len(results) == 0 {
		return
	}
	w := benchkit.NewTable(os.Stdout)
	fmt.Fprintln(w, "part\tsubjects\trecords\ttook\trate\theap in use/1M\tRSS after GC/1M\tRSS returned/1M\tRSS after GC\tRSS returned\tpeak RSS\tstore subjects\tsuppressed\t")
	for _, r := range results {
		unit := "changes/s"
		if r.Part == "rebuild" {
			unit = "records/s"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%v\t%.0f %s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n",
			r.Part, r.Subjects, r.Records, r.Took.Round(time.Millisecond), float64(r.Records)/r.Took.Seconds(), unit,
			perMillion(int64(r.HeapInuse)-int64(r.HeapBase), r.Subjects), perMillion(r.RSS-r.RSSBase, r.Subjects),
			perMillion(r.RSSReturned-r.RSSBase, r.Subjects),
			mib(r.RSS), mib(r.RSSReturned), mib(r.PeakRSS), r.StoreSubjects, r.Suppressed)
	}
	_ = w.Flush()
	for _, r := range results {
		if r.Part == "rebuild" {
			fmt.Printf("rebuild: produced first in %v (%.0f records/s, %.0f MB of JSON values, zstd); the rebuild is NewFollower+Start\n",
				r.Produce.Round(time.Millisecond), float64(r.Records)/r.Produce.Seconds(), float64(r.ProduceBytes)/1e6)
		}
	}
	fmt.Println("per 1M: growth over the process's baseline (after runtime.GC()) divided by subjects; RSS returned: after debug.FreeOSMemory()")
}
