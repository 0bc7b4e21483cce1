package obs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"
	"time"
)

// Component is the main part of a service: built by New, then Start,
// Shutdown (idempotent, safe without Start), and Ready for /readyz.
type Component interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
	Ready(ctx context.Context) error
}

// Run starts the admin server and comp, waits for SIGINT or SIGTERM (or for
// comp to fail through done), then shuts down in reverse order under
// stopTimeout: readiness fails first, drainDelay passes, the component stops
// and flushes, then the admin server stops. A failure is returned, not
// logged.
func Run(log *slog.Logger, admin *Admin, comp Component, startTimeout, drainDelay, stopTimeout time.Duration, done <-chan error) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := admin.Start(ctx); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	err := comp.Start(startCtx)
	cancel()
	if err != nil {
		return errors.Join(fmt.Errorf("start: %w", err), shutdown(log, admin, comp, 0, stopTimeout))
	}
	admin.MarkStarted()
	log.Info("started")

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("signal received; shutting down")
	case runErr = <-done:
		runErr = fmt.Errorf("component stopped: %w", runErr)
	}
	return errors.Join(runErr, shutdown(log, admin, comp, drainDelay, stopTimeout))
}

func shutdown(log *slog.Logger, admin *Admin, comp Component, drainDelay, timeout time.Duration) error {
	admin.Drain()
	if drainDelay > 0 {
		log.Info("readiness failing; draining before stop", "delay", drainDelay)
		time.Sleep(drainDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := errors.Join(comp.Shutdown(ctx), admin.Shutdown(ctx))
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// Sequence is several components as one, for Run: Start starts them in
// order and stops at the first failure; Shutdown stops them all in
// reverse order (the last started, which may depend on the first, stops
// first; a component never started is safe to shut down, so Run's
// shutdown after a failed Start covers them all); Ready is nil when every
// one is.
func Sequence(comps ...Component) Component { return sequence(comps) }

type sequence []Component

func (s sequence) Start(ctx context.Context) error {
	for _, c := range s {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (s sequence) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(s) - 1; i >= 0; i-- {
		errs = append(errs, s[i].Shutdown(ctx))
	}
	return errors.Join(errs...)
}

func (s sequence) Ready(ctx context.Context) error {
	var errs []error
	for _, c := range s {
		errs = append(errs, c.Ready(ctx))
	}
	return errors.Join(errs...)
}

// FirstDone yields the first error any of chans yields, for Run's done
// when several components may stop on their own. Its goroutines wait as
// long as the process: call it once, in main.
func FirstDone(chans ...<-chan error) <-chan error {
	out := make(chan error, len(chans))
	for _, ch := range chans {
		go func() {
			if err, ok := <-ch; ok {
				out <- err
			}
		}()
	}
	return out
}
