package benchkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
)

// Bench is one benchmark of the bench tool (scripts/bench), run as
// `go run ./scripts/bench <Name> [flags]`.
type Bench struct {
	Name    string // as typed after the tool: ingest, sink, ...
	Summary string // one line for the tool's list
	// Run runs the benchmark with the flags that followed its name. It
	// returns a UsageError for bad flags and flag.ErrHelp after -h.
	Run func(ctx context.Context, args []string) error
}

// UsageError is a benchmark's flags refused: the tool exits 2 for it, as
// the flag package does, and 1 for a run that failed.
type UsageError struct {
	Err      error
	reported bool // the flag package has printed it with the usage
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Main is the bench tool: args (the command line after the program's
// name) name a benchmark of benches and its flags. It runs the benchmark
// under a context that Ctrl-C and SIGTERM cancel, so the benchmark still
// cleans up after itself, and returns the exit status: 0 done, 1 the run
// failed, 2 bad usage (no or an unknown name, bad flags). With no
// arguments, or -h, it lists the benchmarks. Errors go to stderr after
// "bench <name>:".
func Main(args []string, benches []Bench, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		list(stderr, benches)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		list(stdout, benches)
		return 0
	}
	var b *Bench
	for i := range benches {
		if benches[i].Name == args[0] {
			b = &benches[i]
		}
	}
	if b == nil {
		fmt.Fprintf(stderr, "bench: no benchmark %q\n\n", args[0])
		list(stderr, benches)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return exitStatus(stderr, "bench "+b.Name, b.Run(ctx, args[1:]))
}

// exitStatus reports err of the benchmark named name on stderr and says
// how the tool exits for it.
func exitStatus(stderr io.Writer, name string, err error) int {
	var usage *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		if !usage.reported {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

func list(w io.Writer, benches []Bench) {
	fmt.Fprintln(w, "usage: go run ./scripts/bench <name> [flags]   (<name> -h: its flags)")
	fmt.Fprintln(w)
	t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, b := range benches {
		fmt.Fprintf(t, "  %s\t%s\n", b.Name, b.Summary)
	}
	t.Flush()
}

// NewFlagSet is the flag set of the benchmark name, which returns its
// errors instead of exiting, so Parse can tell them apart.
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("bench "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// Parse parses args into fs, then validates what they set with validate
// (nil: nothing to validate). A flag the flag set does not know or cannot
// parse, a positional argument, or validate's error comes back as a
// UsageError; -h as flag.ErrHelp, after the flag set printed its usage.
func Parse(fs *flag.FlagSet, args []string, validate func() error) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{Err: err, reported: true}
	}
	if fs.NArg() > 0 {
		return &UsageError{Err: fmt.Errorf("unexpected argument %q: the benchmark takes flags only", fs.Arg(0))}
	}
	if validate == nil {
		return nil
	}
	if err := validate(); err != nil {
		return &UsageError{Err: err}
	}
	return nil
}

// Brokers is the -brokers flag's value, comma-separated host:port, as a
// list, refused unless every broker is on this machine (CheckLoopback):
// the benchmarks flood the broker and delete what they made on it.
func Brokers(list string) ([]string, error) {
	brokers := strings.Split(list, ",")
	return brokers, CheckLoopback("-brokers", brokers...)
}

// BrokerFlags is -brokers, where Kafka is, comma-separated host:port.
type BrokerFlags struct {
	Brokers []string // after Validate

	list string
}

// Define defines -brokers on fs.
func (b *BrokerFlags) Define(fs *flag.FlagSet) {
	fs.StringVar(&b.list, "brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated (loopback only: this is a bench)")
}

// Validate, after parsing, sets Brokers, refused unless every broker is on
// this machine (Brokers).
func (b *BrokerFlags) Validate() error {
	var err error
	b.Brokers, err = Brokers(b.list)
	return err
}

// StoreFlags are the flags of the benchmarks that run the whole pipeline:
// -brokers and -clickhouse, where Kafka and ClickHouse are, -root, the
// collector's write keys, and -check.
type StoreFlags struct {
	BrokerFlags
	ClickHouse string
	Root       string
	WriteKey   string // the events'
	ConsentKey string // the consent updates': a server source's
	Check      bool   // only list what earlier runs left behind
	// EnvFile is -env-file: PREFIX_KEY=VALUE settings (a cluster's
	// overlay, such as configs/cluster/kafka.env) every service started
	// gets before the benchmark's own; Overlay holds them by service
	// prefix, without it, after Validate.
	EnvFile string
	Overlay map[string][]string
}

// Define defines the flags on fs; rootHolds says what the repository root
// holds that the benchmark needs, for -root's help.
func (s *StoreFlags) Define(fs *flag.FlagSet, rootHolds string) {
	s.BrokerFlags.Define(fs)
	fs.StringVar(&s.ClickHouse, "clickhouse", "127.0.0.1:9000", "ClickHouse native address, or the replicas of a cluster comma-separated (loopback only): the bench reads the first, drops its databases on each")
	fs.StringVar(&s.Root, "root", ".", "repository root (holds "+rootHolds+")")
	fs.StringVar(&s.WriteKey, "write-key", "demo-write-key", "collector write key of the events")
	fs.StringVar(&s.ConsentKey, "consent-write-key", "demo-backend-write-key", "collector write key of the consent updates: a server source's, since they grant cross-border transfer")
	fs.BoolVar(&s.Check, "check", false, "only list topics, groups and databases left by earlier runs; exit 1 if any")
	fs.StringVar(&s.EnvFile, "env-file", "", "PREFIX_KEY=VALUE lines every service gets before the bench's own settings, such as configs/cluster/kafka.env (give -brokers of that cluster too)")
}

// Validate, after parsing, sets Brokers and refuses an address not on
// this machine: such a benchmark floods what it talks to and drops the
// databases it made.
func (s *StoreFlags) Validate() error {
	if err := s.BrokerFlags.Validate(); err != nil {
		return err
	}
	if s.EnvFile != "" {
		var err error
		if s.Overlay, err = ReadEnvFile(s.EnvFile); err != nil {
			return err
		}
	}
	return CheckLoopback("-clickhouse", s.ClickHouseServers()...)
}

// ClickHouseServers are -clickhouse's addresses.
func (s *StoreFlags) ClickHouseServers() []string { return strings.Split(s.ClickHouse, ",") }

// ReadEnvFile reads an environment file of PREFIX_KEY=VALUE lines (blank
// lines and # comments skipped) into each prefix's KEY=VALUE settings.
func ReadEnvFile(path string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-env-file: %w", err)
	}
	out := map[string][]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		prefix, kv, ok := strings.Cut(line, "_")
		if !ok || !strings.Contains(kv, "=") || strings.Contains(prefix, "=") {
			return nil, fmt.Errorf("-env-file %s:%d: want PREFIX_KEY=VALUE, got %q", path, i+1, line)
		}
		out[prefix] = append(out[prefix], kv)
	}
	return out, nil
}

// CheckRoot refuses a -root that is not the repository's root: one of
// files (paths relative to the root, such as configs/sink.yaml) is
// missing.
func CheckRoot(root string, files ...string) error {
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			return fmt.Errorf("-root %s is not the repository root: %w", root, err)
		}
	}
	return nil
}

// Parallel calls f(i) for every i from 0 to n-1 on workers goroutines, such
// as the requests that record each subject's consent before a load. It
// stops handing out work at the first error, which it returns, or when
// ctx ends, and then returns ctx's error.
func Parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	next := atomic.Int64{}
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return ctx.Err()
}
