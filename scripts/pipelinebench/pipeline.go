package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// The development pseudonym keys, relative to the repository root, as
// `make run` uses them.
const (
	devPseudonymKey = "configs/dev-pseudonym.key"
	devExportKey    = "configs/dev-export.key"
)

// Destinations: the region's database (configs/sink.yaml) and the export
// destination's (configs/sink-intl.yaml).
const (
	destRegion = "cn"
	destExport = "intl"
)

// binaries are the three commands, built once per run.
type binaries struct{ collector, enricher, sink string }

// pipeline is the four services of a run and what the bench needs of them.
type pipeline struct {
	collector, enricher *benchkit.Service
	sinks               map[string]*benchkit.Service // by destination
	httpAddr            string                       // the collector's public listener
	databases           map[string]string            // by destination
	groups              map[string]string            // consumer group by service label: enricher, sink cn, sink intl

	benchkit.Services // in start order
}

// startPipeline starts both sinks, the enricher and the collector, in that
// order (each loads what the one before it writes), with the shipped
// configs and dev_mode on, as scripts/run.sh does, on topics, groups,
// databases and ports of this run, and waits until each is ready.
func startPipeline(ctx context.Context, e *benchkit.Infra, o options, bins binaries, cl *benchkit.Cleanups) (*pipeline, error) {
	t := struct {
		raw, consent, erasures, requests, receipts, identities, clean, export, dlqRaw, noticesCN, noticesIntl, dlqCN, dlqIntl string
	}{
		e.Topic("raw"), e.Topic("consent"), e.Topic("erasures"), e.Topic("erasure-requests"), e.Topic("receipts"), e.Topic("identities"),
		e.Topic("clean"), e.Topic("export"), e.Topic("dlq-raw"), e.Topic("erasures-cn"), e.Topic("erasures-intl"),
		e.Topic("dlq-cn"), e.Topic("dlq-intl"),
	}
	p := &pipeline{sinks: map[string]*benchkit.Service{}, groups: map[string]string{},
		databases: map[string]string{destRegion: e.Database(destRegion), destExport: e.Database(destExport)}}
	p.groups["enricher"] = e.Group("enricher")
	e.Group("enricher-erasures") // the notifier's: <group_id>-erasures
	for _, d := range []string{destRegion, destExport} {
		p.groups["sink "+d] = e.Group("sink-" + d)
		e.Group("sink-" + d + "-erasures") // the erasure worker's
		e.Group("sink-" + d + "-audit")    // the audit loader's (the region's sink only)
	}
	cl.Add(func() error { _ = p.Stop(); return nil }) // after an error; the report carries a normal stop's errors
	var err error
	if p.httpAddr, err = benchkit.FreeAddr(); err != nil {
		return nil, err
	}
	brokers := strings.Join(o.brokers, ",")
	pseudonymKey, exportKey := filepath.Join(o.root, devPseudonymKey), filepath.Join(o.root, devExportKey)
	sinkEnv := func(d, clean, notices, dlq string) []string {
		return []string{"KAFKA_BROKERS=" + brokers, "TOPICS_CLEAN_NAME=" + clean, "TOPICS_DLQ_NAME=" + dlq,
			"TOPICS_ERASURES_NAME=" + notices, "TOPICS_RECEIPTS_NAME=" + t.receipts,
			"GROUP_ID=" + p.groups["sink "+d], "DATABASE=" + p.databases[d], "CLICKHOUSE_ADDR=" + o.clickhouse,
			"LOG_LEVEL=warn", "DEV_MODE=true"}
	}
	for _, s := range []struct {
		bin, name, dest, config string
		env                     []string
	}{
		{bins.sink, "sink", destRegion, "configs/sink.yaml", sinkEnv(destRegion, t.clean, t.noticesCN, t.dlqCN)},
		{bins.sink, "sink", destExport, "configs/sink-intl.yaml", sinkEnv(destExport, t.export, t.noticesIntl, t.dlqIntl)},
		{bins.enricher, "enricher", "", "configs/enricher.yaml", []string{"KAFKA_BROKERS=" + brokers,
			"TOPICS_RAW_NAME=" + t.raw, "TOPICS_CLEAN_NAME=" + t.clean, "TOPICS_DLQ_NAME=" + t.dlqRaw,
			"TOPICS_CONSENT_NAME=" + t.consent, "TOPICS_ERASURES_NAME=" + t.erasures, "TOPICS_IDENTITIES_NAME=" + t.identities,
			"TOPICS_ERASURE_REQUESTS_NAME=" + t.requests, "TOPICS_ERASURE_NOTICES_NAME=" + t.noticesCN, "TOPICS_RECEIPTS_NAME=" + t.receipts,
			"EXPORT_TOPIC_NAME=" + t.export, "EXPORT_ERASURE_NOTICES_NAME=" + t.noticesIntl,
			"GROUP_ID=" + p.groups["enricher"], "TRANSACTIONAL_ID=" + p.groups["enricher"] + "-tx",
			"PSEUDONYM_KEY_FILE=" + pseudonymKey, "EXPORT_PSEUDONYM_KEY_FILE=" + exportKey, "LOG_LEVEL=warn", "DEV_MODE=true"}},
		{bins.collector, "collector", "", "configs/collector.yaml", []string{"KAFKA_BROKERS=" + brokers,
			"TOPICS_RAW_NAME=" + t.raw, "TOPICS_CONSENT_NAME=" + t.consent, "TOPICS_ERASURES_NAME=" + t.erasures,
			"TOPICS_RECEIPTS_NAME=" + t.receipts, "TOPICS_IDENTITIES_NAME=" + t.identities, "TOPICS_ERASURE_REQUESTS_NAME=" + t.requests,
			"PRIVACY_PSEUDONYM_KEY_FILE=" + pseudonymKey, "PRIVACY_EXPORT_ABROAD_PSEUDONYM_KEY_FILE=" + exportKey,
			"PRIVACY_EXPORT_CLICKHOUSE_ADDR=" + o.clickhouse, "PRIVACY_EXPORT_DATABASE=" + p.databases[destRegion],
			"PRIVACY_EXPORT_ABROAD_CLICKHOUSE_ADDR=" + o.clickhouse, "PRIVACY_EXPORT_ABROAD_DATABASE=" + p.databases[destExport],
			"HTTP_LISTEN=" + p.httpAddr, "LOG_LEVEL=warn", "DEV_MODE=true"}},
	} {
		label := s.name
		if s.dest != "" {
			label += " " + s.dest
		}
		benchkit.Progress("starting %s (%s)", label, s.config)
		env := append(slices.Clone(o.overlay[strings.ToUpper(s.name)]), s.env...)
		svc, err := benchkit.StartServiceConfig(s.bin, o.root, s.name, s.config, env...)
		if err != nil {
			return nil, err
		}
		p.Add(svc)
		if _, err := svc.WaitReady(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		switch {
		case s.dest != "":
			p.sinks[s.dest] = svc
		case s.name == "enricher":
			p.enricher = svc
		default:
			p.collector = svc
		}
	}
	return p, nil
}
