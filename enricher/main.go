// Command enricher judges raw events by consent, de-identifies them and
// routes them onward. See enricher/pipeline for what it does; this file
// only wires.
//
//	enricher [--config FILE]                       run the enricher
//	enricher policy check [--config FILE] [--source NAME] < case.json
//	                                               print what the policy does with one event
//	enricher catalogue infer [--config FILE] [--input FILE|-] [--events N] [--timeout D] > catalogue.yaml
//	                                               print a draft catalogue inferred from raw events:
//	                                               from --input's lines (raw envelopes, Segment
//	                                               events or batch bodies), else from the raw topic
//	enricher erasures rekey [--config FILE]        rewrite suppression records keyed by raw
//	                                               identifiers (before pseudonym keys) by pseudonyms
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
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
	if len(os.Args) > 2 && os.Args[1] == "catalogue" && os.Args[2] == "infer" {
		os.Exit(catalogueInfer(os.Args[3:]))
	}
	if len(os.Args) > 2 && os.Args[1] == "erasures" && os.Args[2] == "rekey" {
		os.Exit(erasuresRekey(os.Args[3:]))
	}
	path := flag.String("config", "configs/enricher.yaml", configHelp)
	flag.Parse()

	cfg := loadConfig(*path)
	log := obs.NewLogger(cfg.Log, "enricher", os.Stderr)
	config.WarnDevMode(log, &cfg)
	reg := obs.NewRegistry()
	p, err := pipeline.New(cfg, reg, log)
	if err != nil {
		log.Error("build enricher", "err", err)
		os.Exit(1)
	}
	admin := obs.NewAdmin(cfg.Admin, reg, log, map[string]obs.Check{"kafka": p.Ready})
	admin.Handle("GET /catalogue/violations", p.Violations())
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

// catalogueInfer prints a draft catalogue inferred from --input's lines
// or from the raw topic (pipeline.InferCatalogue).
func catalogueInfer(args []string) int {
	fs := flag.NewFlagSet("enricher catalogue infer", flag.ExitOnError)
	path := fs.String("config", "configs/enricher.yaml", configHelp+" (for the raw topic)")
	input := fs.String("input", "", "newline-delimited JSON file (raw envelopes, Segment events or batch bodies; - for stdin) instead of the raw topic")
	maxEvents := fs.Int("events", 10000, "records to read from the raw topic at most")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to read the raw topic at most")
	_ = fs.Parse(args)
	if fs.NArg() > 0 || *maxEvents <= 0 || *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "usage: enricher catalogue infer [--config FILE] [--input FILE|-] [--events N>0] [--timeout D>0]")
		return 2
	}
	src := pipeline.InferSource{MaxRecords: *maxEvents, Timeout: *timeout}
	switch *input {
	case "":
		cfg := loadConfig(*path)
		src.Raw = &cfg
	case "-":
		src.Lines = os.Stdin
	default:
		f, err := os.Open(*input)
		if err != nil {
			fmt.Fprintln(os.Stderr, "enricher catalogue infer:", err)
			return 1
		}
		defer f.Close()
		src.Lines = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := pipeline.InferCatalogue(ctx, src, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "enricher catalogue infer:", err)
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

// erasuresRekey rewrites the suppression list's raw-keyed records
// (pipeline.RekeyErasures).
func erasuresRekey(args []string) int {
	fs := flag.NewFlagSet("enricher erasures rekey", flag.ExitOnError)
	path := fs.String("config", "configs/enricher.yaml", configHelp)
	timeout := fs.Duration("timeout", 5*time.Minute, "how long it may take at most")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if _, err := pipeline.RekeyErasures(ctx, loadConfig(*path), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "enricher erasures rekey:", err)
		return 1
	}
	return 0
}
