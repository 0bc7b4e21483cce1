// Command sink loads de-identified events into ClickHouse. See
// sink/chwriter for what it does; this file only wires.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/sink/chwriter"
)

func main() {
	path := flag.String("config", "configs/sink.yaml", "path to the YAML config; every key can be overridden by SINK_<SECTION>_<KEY>")
	flag.Parse()

	cfg := chwriter.Default()
	if err := config.Load(*path, "SINK", &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(2)
	}
	log := obs.NewLogger(cfg.Log, "sink", os.Stderr)
	reg := obs.NewRegistry()
	w, err := chwriter.New(cfg, reg, log)
	if err != nil {
		log.Error("build sink", "err", err)
		os.Exit(1)
	}
	admin := obs.NewAdmin(cfg.Admin, reg, log, map[string]obs.Check{"kafka_and_clickhouse": w.Ready})
	if err := obs.Run(log, admin, w, 60*time.Second, cfg.Admin.DrainDelay, 15*time.Second, w.Done()); err != nil {
		log.Error("sink failed", "err", err)
		os.Exit(1)
	}
}
