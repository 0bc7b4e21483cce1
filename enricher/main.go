// Command enricher judges raw events by consent, de-identifies them and
// routes them onward. See enricher/pipeline for what it does; this file
// only wires.
//
//	enricher [--config FILE]                       run the enricher
//	enricher policy check [--config FILE] [--source NAME] < case.json
//	                                               print what the policy does with one event
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

const configHelp = "path to the YAML config; every key can be overridden by ENRICHER_<SECTION>_<KEY>"

func main() {
	if len(os.Args) > 2 && os.Args[1] == "policy" && os.Args[2] == "check" {
		os.Exit(policyCheck(os.Args[3:]))
	}
	path := flag.String("config", "configs/enricher.yaml", configHelp)
	flag.Parse()

	cfg := loadConfig(*path)
	log := obs.NewLogger(cfg.Log, "enricher", os.Stderr)
	reg := obs.NewRegistry()
	p, err := pipeline.New(cfg, reg, log)
	if err != nil {
		log.Error("build enricher", "err", err)
		os.Exit(1)
	}
	admin := obs.NewAdmin(cfg.Admin, reg, log, map[string]obs.Check{"kafka": p.Ready})
	reg.MustRegister(admin.ReadinessGauge("enricher"))
	if err := obs.Run(log, admin, p, 60*time.Second, cfg.Admin.DrainDelay, 15*time.Second, p.Done()); err != nil {
		log.Error("enricher failed", "err", err)
		os.Exit(1)
	}
}

func policyCheck(args []string) int {
	fs := flag.NewFlagSet("enricher policy check", flag.ExitOnError)
	path := fs.String("config", "configs/enricher.yaml", configHelp)
	source := fs.String("source", "policy-check", "source id of a bare Segment event on stdin")
	_ = fs.Parse(args)
	if err := pipeline.CheckPolicy(loadConfig(*path), *source, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "enricher policy check:", err)
		return 1
	}
	return 0
}

func loadConfig(path string) pipeline.Config {
	cfg := pipeline.Default()
	if err := config.Load(path, "ENRICHER", &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "enricher:", err)
		os.Exit(2)
	}
	return cfg
}
