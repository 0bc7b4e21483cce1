// Command enricher de-identifies raw events and routes them onward. See
// enricher/pipeline for what it does; this file only wires.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/obs"
)

func main() {
	path := flag.String("config", "configs/enricher.yaml", "path to the YAML config; every key can be overridden by ENRICHER_<SECTION>_<KEY>")
	flag.Parse()

	cfg := pipeline.Default()
	if err := config.Load(*path, "ENRICHER", &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "enricher:", err)
		os.Exit(2)
	}
	log := obs.NewLogger(cfg.Log, "enricher", os.Stderr)
	reg := obs.NewRegistry()
	p, err := pipeline.New(cfg, reg, log)
	if err != nil {
		log.Error("build enricher", "err", err)
		os.Exit(1)
	}
	admin := obs.NewAdmin(cfg.Admin, reg, log, map[string]obs.Check{"kafka": p.Ready})
	if err := obs.Run(log, admin, p, 60*time.Second, cfg.Admin.DrainDelay, 15*time.Second, p.Done()); err != nil {
		log.Error("enricher failed", "err", err)
		os.Exit(1)
	}
}
