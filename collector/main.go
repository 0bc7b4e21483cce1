// Command collector receives Segment-compatible events over HTTP and writes
// them to Kafka. See collector/ingest for what it does; this file only wires.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/collector/privacyapi"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/obs"
)

func main() {
	path := flag.String("config", "configs/collector.yaml", "path to the YAML config; every key can be overridden by COLLECTOR_<SECTION>_<KEY>")
	flag.Parse()

	cfg := ingest.Default()
	if err := config.Load(*path, "COLLECTOR", &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "collector:", err)
		os.Exit(2)
	}
	log := obs.NewLogger(cfg.Log, "collector", os.Stderr)
	config.WarnDevMode(log, &cfg)
	reg := obs.NewRegistry()
	c, err := build(cfg, reg, log)
	if err != nil {
		log.Error("build collector", "err", err)
		os.Exit(1)
	}
	// The privacy API starts after the ingest server, whose producer and
	// consent store its handlers use, and stops before it; its listener
	// starts last and stops first.
	if err := obs.Run(log, c.admin, obs.Sequence(c.ingest, c.privacyAPI, c.privacy), 30*time.Second, cfg.Admin.DrainDelay, 15*time.Second,
		obs.FirstDone(c.ingest.Done(), c.privacy.Done())); err != nil {
		log.Error("collector failed", "err", err)
		os.Exit(1)
	}
}

// collector is the process's parts: the public ingest server, the privacy
// API (its handlers and their state) on its own listener, and the admin
// server (/metrics, /healthz, /readyz), which never carries the privacy
// API.
type collector struct {
	ingest     *ingest.Server
	privacyAPI *privacyapi.API
	privacy    *privacyapi.Server
	admin      *obs.Admin
}

func build(cfg ingest.Config, reg *prometheus.Registry, log *slog.Logger) (*collector, error) {
	srv, err := ingest.New(cfg, reg, log)
	if err != nil {
		return nil, err
	}
	api, err := privacyapi.NewAPI(cfg, privacyapi.Deps{Produce: srv.Produce, Consent: srv.ConsentStore(), WaitConsent: srv.WaitConsent}, reg, log)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return nil, err
	}
	papi, err := privacyapi.New(cfg.Privacy, api.Routes(), log)
	if err != nil {
		_ = api.Shutdown(context.Background())
		_ = srv.Shutdown(context.Background())
		return nil, err
	}
	admin := obs.NewAdmin(cfg.Admin, reg, log, map[string]obs.Check{"kafka": srv.Ready})
	reg.MustRegister(admin.ReadinessGauge("collector"))
	return &collector{ingest: srv, privacyAPI: api, privacy: papi, admin: admin}, nil
}
