package benchkit

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

// benches are two benchmarks whose Run records its arguments and returns
// err.
func testBenches(got *[]string, err error) []Bench {
	run := func(_ context.Context, args []string) error { *got = args; return err }
	return []Bench{{Name: "one", Summary: "the first", Run: run}, {Name: "two", Summary: "the second", Run: run}}
}

func TestMainDispatchesAndExits(t *testing.T) {
	usage := &UsageError{Err: errors.New("-rate 5: want 100-50000")}
	for _, c := range []struct {
		name     string
		args     []string
		runErr   error
		status   int
		ran      []string // nil: did not run
		stdout   []string
		stderr   []string
		noStderr bool
	}{
		{name: "no name lists", args: nil, status: 2, stderr: []string{"usage:", "one  the first", "two  the second"}},
		{name: "-h lists", args: []string{"-h"}, status: 0, stdout: []string{"one  the first", "two  the second"}},
		{name: "unknown", args: []string{"three"}, status: 2, stderr: []string{`no benchmark "three"`, "one  the first"}},
		{name: "runs with its flags", args: []string{"two", "-rate", "5"}, status: 0, ran: []string{"-rate", "5"}, noStderr: true},
		{name: "run error", args: []string{"one"}, runErr: errors.New("broker down"), status: 1, ran: []string{}, stderr: []string{"bench one: broker down"}},
		{name: "bad flag", args: []string{"one"}, runErr: usage, status: 2, ran: []string{}, stderr: []string{"bench one: -rate 5: want 100-50000"}},
		{name: "flag package's", args: []string{"one"}, runErr: &UsageError{Err: errors.New("x"), reported: true}, status: 2, ran: []string{}, noStderr: true},
		{name: "help of one", args: []string{"one", "-h"}, runErr: flag.ErrHelp, status: 0, ran: []string{"-h"}, noStderr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ran []string
			var stdout, stderr bytes.Buffer
			status := Main(c.args, testBenches(&ran, c.runErr), &stdout, &stderr)
			if status != c.status {
				t.Errorf("status %d; want %d", status, c.status)
			}
			if c.ran == nil && ran != nil || c.ran != nil && strings.Join(ran, " ") != strings.Join(c.ran, " ") {
				t.Errorf("ran with %q; want %q", ran, c.ran)
			}
			for _, w := range c.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout %q lacks %q", stdout.String(), w)
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
			if c.noStderr && stderr.Len() > 0 {
				t.Errorf("stderr %q; want nothing", stderr.String())
			}
		})
	}
}

func TestParse(t *testing.T) {
	newFS := func() (*flag.FlagSet, *int) {
		fs := NewFlagSet("test")
		fs.SetOutput(&bytes.Buffer{})
		return fs, fs.Int("rate", 5000, "")
	}
	limit := func(rate *int) func() error {
		return func() error {
			var l Limits
			l.Int("rate", *rate, 100, 50000)
			return l.Err()
		}
	}
	fs, rate := newFS()
	if err := Parse(fs, []string{"-rate", "200"}, limit(rate)); err != nil || *rate != 200 {
		t.Errorf("Parse -rate 200 = %v, rate %d", err, *rate)
	}
	for _, c := range []struct {
		args []string
		want string // in the error; "" for flag.ErrHelp
	}{
		{[]string{"-rate", "5"}, "-rate 5: want 100-50000"},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-rate", "x"}, `invalid value "x" for flag -rate`},
		{[]string{"-rate", "200", "extra"}, `unexpected argument "extra"`},
		{[]string{"-h"}, ""},
	} {
		fs, rate := newFS()
		err := Parse(fs, c.args, limit(rate))
		var usage *UsageError
		switch {
		case c.want == "":
			if !errors.Is(err, flag.ErrHelp) {
				t.Errorf("Parse %q = %v; want flag.ErrHelp", c.args, err)
			}
		case !errors.As(err, &usage) || !strings.Contains(err.Error(), c.want):
			t.Errorf("Parse %q = %v; want a UsageError saying %q", c.args, err, c.want)
		}
	}
}

func TestStoreFlagsRefuseWhatIsNotLoopback(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" for no error
	}{
		{nil, ""},
		{[]string{"-brokers", "127.0.0.1:9092,localhost:9093"}, ""},
		{[]string{"-brokers", "127.0.0.1:9092,10.0.0.7:9092"}, "-brokers"},
		{[]string{"-clickhouse", "db.example.com:9000"}, "-clickhouse"},
		{[]string{"-clickhouse", "127.0.0.1:19000,127.0.0.1:19001"}, ""},
		{[]string{"-clickhouse", "127.0.0.1:19000,db.example.com:9000"}, "-clickhouse"},
	} {
		var s StoreFlags
		fs := NewFlagSet("test")
		s.Define(fs, "configs/")
		err := Parse(fs, c.args, s.Validate)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v; want an error naming %s", c.args, err, c.want)
		}
		if c.want == "" && (len(s.Brokers) == 0 || s.ClickHouse == "" || s.Root != "." || s.WriteKey != "demo-write-key") {
			t.Errorf("%q: %+v; want the brokers and the defaults", c.args, s)
		}
	}
	s := StoreFlags{ClickHouse: "127.0.0.1:19000,127.0.0.1:19001"}
	if got := s.ClickHouseServers(); !slices.Equal(got, []string{"127.0.0.1:19000", "127.0.0.1:19001"}) {
		t.Errorf("ClickHouseServers = %q, want both replicas", got)
	}
}

func TestLimits(t *testing.T) {
	var l Limits
	l.Int("rate", 5000, 100, 50000)
	l.Float("factor", 1.5, 1.05, 4)
	l.Duration("warmup", 0, 0, 5*time.Second)
	if err := l.Err(); err != nil {
		t.Fatalf("values within bounds: %v", err)
	}
	for _, c := range []struct {
		check func(*Limits)
		want  string
	}{
		{func(l *Limits) { l.Int("rate", 99, 100, 50000) }, "-rate 99: want 100-50000"},
		{func(l *Limits) { l.Int("rate", 50001, 100, 50000) }, "-rate 50001: want 100-50000"},
		{func(l *Limits) { l.Float("factor", 4.5, 1.05, 4) }, "-factor 4.5: want 1.05-4"},
		{func(l *Limits) { l.Duration("duration", 6*time.Minute, 5*time.Second, 5*time.Minute) }, "-duration 6m0s: want 5s-5m"},
		{func(l *Limits) { l.Duration("warmup", 6*time.Second, 0, 5*time.Second) }, "-warmup 6s: want 0-5s"},
		{func(l *Limits) { l.Duration("poll", time.Millisecond, 10*time.Millisecond, time.Second) }, "-poll 1ms: want 10ms-1s"},
		{func(l *Limits) { l.Check(false, "nothing to do: %s", "both off") }, "nothing to do: both off"},
		// The first value out of bounds is the one named.
		{func(l *Limits) { l.Int("a", 0, 1, 2); l.Int("b", 0, 1, 2) }, "-a 0: want 1-2"},
	} {
		var l Limits
		c.check(&l)
		if err := l.Err(); err == nil || err.Error() != c.want {
			t.Errorf("Err = %v; want %q", err, c.want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 10 * time.Millisecond: "10ms", time.Second: "1s", 30 * time.Second: "30s",
		5 * time.Minute: "5m", 90 * time.Second: "1m30s", time.Hour: "1h", 90 * time.Minute: "1h30m",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q; want %q", d, got, want)
		}
	}
}
