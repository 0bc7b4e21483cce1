package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// Destinations: the region the collector and enricher serve (the sink of
// configs/sink.yaml) and the export destination (configs/sink-intl.yaml),
// as the receipts and the sinks' destination label name them.
const (
	destRegion = "cn"
	destExport = "intl"
)

// pipeline is the four services of a run and what the bench needs of them.
type pipeline struct {
	collector, enricher *benchkit.Service
	sinks               map[string]*benchkit.Service // by destination
	httpAddr            string                       // the collector's public listener
	receipts            string                       // the run's privacy.receipts
	databases           map[string]string            // by destination

	benchkit.Services // in start order
}

// operatorsLine is the shipped collector.yaml's (empty) operator list.
var operatorsLine = regexp.MustCompile(`(?m)^  operators: \[\]$`)

// collectorConfig writes a copy of configs/collector.yaml with the dev
// operator switched on, as scripts/run.sh does: privacy.operators is a list
// of structs, which no environment variable can set.
func collectorConfig(e *infra) (string, error) {
	b, err := os.ReadFile(filepath.Join(e.o.root, "configs", "collector.yaml"))
	if err != nil {
		return "", err
	}
	if !operatorsLine.Match(b) {
		return "", errors.New(`configs/collector.yaml: no line "  operators: []" to switch the dev operator on in`)
	}
	line := fmt.Sprintf("  operators: [{name: dev, token_file: %s}]", strconv.Quote(e.o.tokenFile))
	b = operatorsLine.ReplaceAllLiteral(b, []byte(line))
	path := filepath.Join(e.tmp, "collector.yaml")
	return path, os.WriteFile(path, b, 0o600)
}

// startPipeline starts both sinks, the enricher and the collector, in that
// order (each loads what the one before it writes), on topics, groups,
// databases and ports of this run, and waits until each is ready.
func startPipeline(ctx context.Context, e *infra, cl *benchkit.Cleanups) (*pipeline, error) {
	o := e.o
	t := struct {
		raw, consent, erasures, requests, receipts, identities, clean, export, dlqRaw, noticesCN, noticesIntl, dlqCN, dlqIntl string
	}{
		e.Topic("raw"), e.Topic("consent"), e.Topic("erasures"), e.Topic("erasure-requests"), e.Topic("receipts"), e.Topic("identities"),
		e.Topic("clean"), e.Topic("export"), e.Topic("dlq-raw"), e.Topic("erasures-cn"), e.Topic("erasures-intl"),
		e.Topic("dlq-cn"), e.Topic("dlq-intl"),
	}
	enricherGroup := e.Group("enricher")
	e.Group("enricher-erasures") // the notifier's: <group_id>-erasures
	sinkGroups := map[string]string{}
	for _, d := range []string{destRegion, destExport} {
		sinkGroups[d] = e.Group("sink-" + d)
		e.Group("sink-" + d + "-erasures") // the erasure worker's
		e.Group("sink-" + d + "-audit")    // the audit loader's (the region's sink only)
	}
	p := &pipeline{sinks: map[string]*benchkit.Service{}, receipts: t.receipts,
		databases: map[string]string{destRegion: e.Database(destRegion), destExport: e.Database(destExport)}}
	cl.Add(func() error { _ = p.Stop(); return nil }) // after an error; the report carries a normal stop's errors
	var err error
	if p.httpAddr, err = benchkit.FreeAddr(); err != nil {
		return nil, err
	}
	collectorYAML, err := collectorConfig(e)
	if err != nil {
		return nil, err
	}
	brokers := strings.Join(o.brokers, ",")
	pseudonymKey := filepath.Join(o.root, devPseudonymKey)
	sinkEnv := func(d, clean, notices, dlq string) []string {
		return []string{"KAFKA_BROKERS=" + brokers, "TOPICS_CLEAN_NAME=" + clean, "TOPICS_DLQ_NAME=" + dlq,
			"TOPICS_ERASURES_NAME=" + notices, "TOPICS_RECEIPTS_NAME=" + t.receipts,
			"GROUP_ID=" + sinkGroups[d], "DATABASE=" + p.databases[d], "CLICKHOUSE_ADDR=" + o.clickhouse, "LOG_LEVEL=warn"}
	}
	for _, s := range []struct {
		bin, name, dest, config string
		env                     []string
	}{
		{e.bins.sink, "sink", destRegion, "configs/sink.yaml", sinkEnv(destRegion, t.clean, t.noticesCN, t.dlqCN)},
		{e.bins.sink, "sink", destExport, "configs/sink-intl.yaml", sinkEnv(destExport, t.export, t.noticesIntl, t.dlqIntl)},
		{e.bins.enricher, "enricher", "", "configs/enricher.yaml", []string{"KAFKA_BROKERS=" + brokers,
			"TOPICS_RAW_NAME=" + t.raw, "TOPICS_CLEAN_NAME=" + t.clean, "TOPICS_DLQ_NAME=" + t.dlqRaw,
			"TOPICS_CONSENT_NAME=" + t.consent, "TOPICS_ERASURES_NAME=" + t.erasures, "TOPICS_IDENTITIES_NAME=" + t.identities,
			"TOPICS_ERASURE_REQUESTS_NAME=" + t.requests, "TOPICS_ERASURE_NOTICES_NAME=" + t.noticesCN, "TOPICS_RECEIPTS_NAME=" + t.receipts,
			"EXPORT_TOPIC_NAME=" + t.export, "EXPORT_ERASURE_NOTICES_NAME=" + t.noticesIntl,
			"GROUP_ID=" + enricherGroup, "TRANSACTIONAL_ID=" + enricherGroup + "-tx",
			"PSEUDONYM_KEY_FILE=" + pseudonymKey, "EXPORT_PSEUDONYM_KEY_FILE=" + filepath.Join(o.root, devExportKey), "LOG_LEVEL=warn",
			"DEV_MODE=true"}}, // the development keys
		{e.bins.collector, "collector", "", collectorYAML, []string{"KAFKA_BROKERS=" + brokers,
			"TOPICS_RAW_NAME=" + t.raw, "TOPICS_CONSENT_NAME=" + t.consent, "TOPICS_ERASURES_NAME=" + t.erasures,
			"TOPICS_RECEIPTS_NAME=" + t.receipts, "TOPICS_IDENTITIES_NAME=" + t.identities, "TOPICS_ERASURE_REQUESTS_NAME=" + t.requests,
			"PRIVACY_PSEUDONYM_KEY_FILE=" + pseudonymKey, "PRIVACY_EXPORT_ABROAD_PSEUDONYM_KEY_FILE=" + filepath.Join(o.root, devExportKey),
			"PRIVACY_EXPORT_CLICKHOUSE_ADDR=" + o.clickhouse, "PRIVACY_EXPORT_DATABASE=" + p.databases[destRegion],
			"PRIVACY_EXPORT_ABROAD_CLICKHOUSE_ADDR=" + o.clickhouse, "PRIVACY_EXPORT_ABROAD_DATABASE=" + p.databases[destExport],
			"HTTP_LISTEN=" + p.httpAddr, "LOG_LEVEL=warn",
			"DEV_MODE=true"}}, // the demo write keys, the development key and token
	} {
		label := s.name
		if s.dest != "" {
			label += " " + s.dest
		}
		benchkit.Progress("starting %s (%s)", label, s.config)
		svc, err := benchkit.StartServiceConfig(s.bin, o.root, s.name, s.config, s.env...)
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
