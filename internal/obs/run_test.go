package obs

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// recorder is a component that notes its calls in a shared log.
type recorder struct {
	name     string
	log      *[]string
	startErr error
}

func (r recorder) Start(context.Context) error {
	*r.log = append(*r.log, "start "+r.name)
	return r.startErr
}

func (r recorder) Shutdown(context.Context) error {
	*r.log = append(*r.log, "stop "+r.name)
	return nil
}

func (r recorder) Ready(context.Context) error { return nil }

func TestSequence(t *testing.T) {
	var log []string
	seq := Sequence(recorder{"ingest", &log, nil}, recorder{"privacy", &log, nil})
	if err := seq.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := seq.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"start ingest", "start privacy", "stop privacy", "stop ingest"}; !slices.Equal(log, want) {
		t.Errorf("calls %q, want %q: start in order, stop in reverse", log, want)
	}

	log = nil
	failed := errors.New("listen: address in use")
	seq = Sequence(recorder{"ingest", &log, failed}, recorder{"privacy", &log, nil})
	if err := seq.Start(context.Background()); !errors.Is(err, failed) {
		t.Errorf("Start = %v, want the first component's error", err)
	}
	if want := []string{"start ingest"}; !slices.Equal(log, want) {
		t.Errorf("calls %q, want %q: nothing started after a failure", log, want)
	}
}

func TestFirstDone(t *testing.T) {
	a, b := make(chan error), make(chan error, 1)
	failed := errors.New("privacy api server: closed")
	b <- failed
	if err := <-FirstDone(a, b); !errors.Is(err, failed) {
		t.Errorf("FirstDone = %v, want the error of the channel that yielded", err)
	}
}
