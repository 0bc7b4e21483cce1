package benchkit

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Main is a benchmark's main function, so that every one treats its flags,
// signals and exit status alike. parse reads the flags; an error exits 2,
// as the flag package's own do. If checkOnly says o asks only for a check
// of what earlier runs left behind (the benchmark's -check), check runs
// alone and its failure exits 1; checkOnly nil: the benchmark has no such
// mode. Otherwise run runs under a context that Ctrl-C and SIGTERM cancel,
// so the benchmark still cleans up after itself, and its error exits 1.
// Errors go to stderr after the benchmark's name.
func Main[O any](name string, parse func() (O, error), checkOnly func(O) bool, check func(O) error, run func(context.Context, O) error) {
	o, err := parse()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(2)
	}
	if checkOnly != nil && checkOnly(o) {
		if err := check(o); err != nil {
			fmt.Fprintln(os.Stderr, name+":", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Brokers is the -brokers flag's value, comma-separated host:port, as a
// list, refused unless every broker is on this machine (CheckLoopback):
// the benchmarks flood the broker and delete what they made on it.
func Brokers(list string) ([]string, error) {
	brokers := strings.Split(list, ",")
	return brokers, CheckLoopback("-brokers", brokers...)
}

// StoreFlags defines -brokers and -clickhouse, where Kafka and ClickHouse
// are, on the default flag set, for the benchmarks that run the whole
// pipeline. After flag.Parse, the function it returns gives their values,
// refused unless every address is on this machine: such a benchmark floods
// what it talks to and drops the databases it made.
func StoreFlags() func() (brokers []string, clickhouse string, err error) {
	list := flag.String("brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated (loopback only: this is a bench)")
	ch := flag.String("clickhouse", "127.0.0.1:9000", "ClickHouse native address (loopback only)")
	return func() ([]string, string, error) {
		brokers, err := Brokers(*list)
		if err != nil {
			return brokers, *ch, err
		}
		return brokers, *ch, CheckLoopback("-clickhouse", *ch)
	}
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
