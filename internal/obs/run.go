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
