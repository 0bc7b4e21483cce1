// Command sink loads de-identified events into ClickHouse. See
// sink/chwriter for what it does; this file only wires.
//
//	sink [--config FILE]                    run the sink
//	sink reapply-erasures [--config FILE]   after restoring a backup: delete
//	                                        every erased subject's rows again
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/sink/chwriter"
)

const configHelp = "path to the YAML config; every key can be overridden by SINK_<SECTION>_<KEY>"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "reapply-erasures" {
		os.Exit(reapply(os.Args[2:]))
	}
	path := flag.String("config", "configs/sink.yaml", configHelp)
	flag.Parse()

	cfg := loadConfig(*path)
	log := obs.NewLogger(cfg.Log, "sink", os.Stderr)
	config.WarnDevMode(log, &cfg)
	reg := obs.NewRegistry()
	w, err := chwriter.New(cfg, reg, log)
	if err != nil {
		log.Error("build sink", "err", err)
		os.Exit(1)
	}
	admin := obs.NewAdmin(cfg.Admin, reg, log, map[string]obs.Check{"kafka_and_clickhouse": w.Ready})
	reg.MustRegister(admin.ReadinessGauge("sink"))
	if err := obs.Run(log, admin, w, 60*time.Second, cfg.Admin.DrainDelay, 15*time.Second, w.Done()); err != nil {
		log.Error("sink failed", "err", err)
		os.Exit(1)
	}
}

func reapply(args []string) int {
	fs := flag.NewFlagSet("sink reapply-erasures", flag.ExitOnError)
	path := fs.String("config", "configs/sink.yaml", configHelp)
	_ = fs.Parse(args)
	cfg := loadConfig(*path)
	log := obs.NewLogger(cfg.Log, "sink", os.Stderr)
	config.WarnDevMode(log, &cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := chwriter.Reapply(ctx, cfg, log)
	fmt.Printf("erasure notices: %d (%d unreadable), rows deleted: %d, mutations: %d\n", report.Notices, report.Unreadable, report.Rows, report.Mutations)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink reapply-erasures:", err)
		return 1
	}
	return 0
}

func loadConfig(path string) chwriter.Config {
	cfg := chwriter.Default()
	if err := config.Load(path, "SINK", &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(2)
	}
	return cfg
}
