package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/testenv"
	"github.com/consentflow/consentflow/sink/chwriter"
)

// privacyStack is the whole pipeline on this run's own topics and
// databases: the collector with the privacy admin API (the dev operator),
// the enricher, and a sink per destination, each from its shipped config.
type privacyStack struct {
	brokers                          []string
	run, database                    string
	raw, consent, erasures, export   string
	log                              *slog.Logger
	ecfg                             pipeline.Config
	scfg                             chwriter.Config
	enricher                         obs.Component
	enricherReg, sinkReg, collectReg *prometheus.Registry
	// base is the collector's public URL; op calls its admin API.
	base string
	op   operatorClient
	conn driver.Conn
}

// startPrivacyStack starts the stack for the test named name; edit, if not
// nil, changes the collector's config before it is validated.
func startPrivacyStack(t *testing.T, ctx context.Context, name string, edit func(*ingest.Config)) *privacyStack {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	chAddr := testenv.ClickHouseAddr(t)
	run := testenv.Name(t, name)
	raw, clean, dlq, rawDLQ, export := "events.raw."+run, "events.clean."+run, "events.dlq."+run, "events.dlq.raw."+run, "events.export."+run
	consent, erasures := "privacy.consent."+run, "privacy.erasures."+run
	testenv.DeleteTopicsAfter(t, brokers, raw, clean, dlq, rawDLQ, export, consent, erasures)
	database := "analytics_" + run

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	t.Setenv("ENRICHER_PSEUDONYM_KEY_FILE", "../configs/dev-pseudonym.key")
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_KEY_FILE", "../configs/dev-export.key")
	t.Setenv("COLLECTOR_PRIVACY_PSEUDONYM_KEY_FILE", "../configs/dev-pseudonym.key")

	ccfg := ingest.Default()
	load(t, "../configs/collector.yaml", "COLLECTOR", &ccfg)
	ccfg.Kafka.Brokers, ccfg.HTTP.Listen, ccfg.Admin.Listen = brokers, "127.0.0.1:0", "127.0.0.1:0"
	ccfg.Topics.Raw.Name, ccfg.Topics.Consent.Name, ccfg.Topics.Erasures.Name = raw, consent, erasures
	ccfg.Privacy.Operators = []ingest.Operator{{Name: "dev", TokenFile: "../configs/dev-operator.token"}}

	ecfg := pipeline.Default()
	load(t, "../configs/enricher.yaml", "ENRICHER", &ecfg)
	ecfg.Kafka.Brokers, ecfg.GroupID, ecfg.TransactionalID = brokers, "enricher-"+run, "enricher-"+run
	ecfg.Admin.Listen = "127.0.0.1:0"
	ecfg.Topics.Raw.Name, ecfg.Topics.Clean.Name, ecfg.Topics.DLQ.Name = raw, clean, rawDLQ
	ecfg.Topics.Consent.Name, ecfg.Topics.Erasures.Name, ecfg.Export.Topic.Name = consent, erasures, export

	sinkConfig := func(file, db, topic string) chwriter.Config {
		c := chwriter.Default()
		load(t, file, "SINK", &c)
		c.Kafka.Brokers, c.GroupID, c.Database = brokers, "sink-"+db, db
		c.ClickHouse.Addr = []string{chAddr}
		testenv.ClickHouseSinkUser(t, chAddr, db).Apply(&c.ClickHouse)
		c.Topics.Clean.Name, c.Topics.DLQ.Name = topic, dlq
		c.Batch.MaxWait, c.Erasure.Window = 200*time.Millisecond, 500*time.Millisecond
		return c
	}
	scfg := sinkConfig("../configs/sink.yaml", database, clean)
	xcfg := sinkConfig("../configs/sink-intl.yaml", database+"_intl", export)
	isolatePrivacy(t, brokers, run, &ccfg, &ecfg, &scfg, &xcfg)
	// Exports read as the shipped read-only user, confined to the region.
	ccfg.Privacy.Export.ClickHouse.Addr, ccfg.Privacy.Export.Database = []string{chAddr}, database
	testenv.ClickHousePrivacyReader(t, chAddr, database).Apply(&ccfg.Privacy.Export.ClickHouse)
	if edit != nil {
		edit(&ccfg)
	}
	if err := ccfg.Validate(); err != nil { // reads the token and key files
		t.Fatal(err)
	}

	st := &privacyStack{brokers: brokers, run: run, database: database, raw: raw, consent: consent, erasures: erasures, export: export,
		log: log, ecfg: ecfg, scfg: scfg, enricherReg: prometheus.NewRegistry(), sinkReg: prometheus.NewRegistry(), collectReg: prometheus.NewRegistry()}
	startOn(t, ctx, st.sinkReg, func(reg prometheus.Registerer) (obs.Component, error) { return chwriter.New(scfg, reg, log) })
	startOn(t, ctx, prometheus.NewRegistry(), func(reg prometheus.Registerer) (obs.Component, error) { return chwriter.New(xcfg, reg, log) })
	st.enricher = startOn(t, ctx, st.enricherReg, func(reg prometheus.Registerer) (obs.Component, error) { return pipeline.New(ecfg, reg, log) })
	collector := startOn(t, ctx, st.collectReg, func(reg prometheus.Registerer) (obs.Component, error) { return ingest.New(ccfg, reg, log) }).(*ingest.Server)
	admin := obs.NewAdmin(ccfg.Admin, st.collectReg, log, map[string]obs.Check{"kafka": collector.Ready})
	for pattern, h := range collector.AdminRoutes() {
		admin.Handle(pattern, h)
	}
	if err := admin.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Shutdown(context.Background()) })
	token, err := os.ReadFile("../configs/dev-operator.token")
	if err != nil {
		t.Fatal(err)
	}
	st.op = operatorClient{base: "http://" + admin.Addr(), token: string(bytes.TrimSpace(token))}
	st.base = "http://" + collector.Addr()
	st.conn = testenv.ClickHouseDB(t, chAddr, database)
	return st
}
