// Command collector receives Segment-compatible events over HTTP and writes
// them to Kafka. See collector/ingest for what it does; this file only wires.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/consentflow/consentflow/collector/ingest"
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
	srv, err := ingest.New(cfg, reg, log)
	if err != nil {
		log.Error("build collector", "err", err)
		os.Exit(1)
	}
	admin := obs.NewAdmin(cfg.Admin, reg, log, map[string]obs.Check{"kafka": srv.Ready})
	reg.MustRegister(admin.ReadinessGauge("collector"))
	// The privacy admin API listens on the admin port, never the public one.
	for pattern, h := range srv.AdminRoutes() {
		admin.Handle(pattern, h)
	}
	if err := obs.Run(log, admin, srv, 30*time.Second, cfg.Admin.DrainDelay, 15*time.Second, srv.Done()); err != nil {
		log.Error("collector failed", "err", err)
		os.Exit(1)
	}
}
