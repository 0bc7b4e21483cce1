package e2e

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/testenv"
	"github.com/consentflow/consentflow/sink/chwriter"
)

// privacyStack is the whole pipeline on this run's own topics and
// databases: the collector with the privacy admin API (the dev operator),
// the enricher, and a sink per destination, each from its shipped config.
type privacyStack struct {
	*runConfigs
	log                              *slog.Logger
	enricher                         obs.Component
	enricherReg, sinkReg, collectReg *prometheus.Registry
	// base is the collector's public URL; op calls its privacy API.
	base string
	op   operatorClient
	conn driver.Conn
}

// runConfigs are every stage's shipped config on this run's own topics
// and databases (deleted when the test ends), each sink as a user
// confined to its database: what the e2e tests start the pipeline with.
type runConfigs struct {
	brokers                               []string
	run, database                         string
	raw, clean, consent, erasures, export string
	ccfg                                  ingest.Config
	ecfg                                  pipeline.Config
	scfg, xcfg                            chwriter.Config
}

// newRunConfigs loads the shipped configs for the test's run name.
func newRunConfigs(t *testing.T, name string) *runConfigs {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	chAddr := testenv.ClickHouseAddr(t)
	run := testenv.Name(t, name)
	raw, clean, rawDLQ, export := "events.raw."+run, "events.clean."+run, "events.dlq.raw."+run, "events.export."+run
	consent, erasures := "privacy.consent."+run, "privacy.erasures."+run
	testenv.DeleteTopicsAfter(t, brokers, raw, clean, "events.dlq.cn."+run, "events.dlq.intl."+run, rawDLQ, export, consent, erasures)
	devMode(t)
	t.Setenv("ENRICHER_PSEUDONYM_KEY_FILE", "../configs/dev-pseudonym.key")
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_KEY_FILE", "../configs/dev-export.key")
	t.Setenv("COLLECTOR_PRIVACY_PSEUDONYM_KEY_FILE", "../configs/dev-pseudonym.key")
	t.Setenv("COLLECTOR_PRIVACY_EXPORT_ABROAD_PSEUDONYM_KEY_FILE", "../configs/dev-export.key")
	c := &runConfigs{brokers: brokers, run: run, database: "analytics_" + run, raw: raw, clean: clean, consent: consent, erasures: erasures, export: export,
		ccfg: ingest.Default(), ecfg: pipeline.Default()}

	load(t, "../configs/collector.yaml", "COLLECTOR", &c.ccfg)
	c.ccfg.Kafka.Brokers, c.ccfg.HTTP.Listen = brokers, "127.0.0.1:0"
	c.ccfg.Topics.Raw.Name, c.ccfg.Topics.Consent.Name, c.ccfg.Topics.Erasures.Name = raw, consent, erasures

	load(t, "../configs/enricher.yaml", "ENRICHER", &c.ecfg)
	c.ecfg.Kafka.Brokers, c.ecfg.GroupID, c.ecfg.TransactionalID = brokers, "enricher-"+run, "enricher-"+run
	c.ecfg.Topics.Raw.Name, c.ecfg.Topics.Clean.Name, c.ecfg.Topics.DLQ.Name = raw, clean, rawDLQ
	c.ecfg.Topics.Consent.Name, c.ecfg.Topics.Erasures.Name, c.ecfg.Export.Topic.Name = consent, erasures, export

	// Each destination's dead letters go to its own topic.
	sinkConfig := func(file, db, topic string) chwriter.Config {
		s := chwriter.Default()
		load(t, file, "SINK", &s)
		s.Kafka.Brokers, s.GroupID, s.Database = brokers, "sink-"+db, db
		s.ClickHouse.Addr = []string{chAddr}
		testenv.ClickHouseSinkUser(t, chAddr, db).Apply(&s.ClickHouse)
		s.Topics.Clean.Name, s.Topics.DLQ.Name = topic, s.Topics.DLQ.Name+"."+run
		s.Batch.MaxWait = 200 * time.Millisecond
		return s
	}
	c.scfg = sinkConfig("../configs/sink.yaml", c.database, clean)
	c.xcfg = sinkConfig("../configs/sink-intl.yaml", c.database+"_intl", export)
	isolatePrivacy(t, brokers, run, &c.ccfg, &c.ecfg, &c.scfg, &c.xcfg)
	return c
}

// startPrivacyStack starts the stack for the test named name; edit, if not
// nil, changes the collector's config before it is validated.
func startPrivacyStack(t *testing.T, ctx context.Context, name string, edit func(*ingest.Config)) *privacyStack {
	t.Helper()
	rc := newRunConfigs(t, name)
	chAddr := testenv.ClickHouseAddr(t)
	ccfg, ecfg, scfg, xcfg := &rc.ccfg, &rc.ecfg, &rc.scfg, &rc.xcfg
	log := quietLog()
	ccfg.Admin.Listen, ecfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	scfg.Erasure.Window, xcfg.Erasure.Window = 500*time.Millisecond, 500*time.Millisecond
	privacyOn(t, ccfg, chAddr, rc.database)
	if edit != nil {
		edit(ccfg)
	}
	if err := config.Check(ccfg); err != nil { // reads the token and key files
		t.Fatal(err)
	}

	st := &privacyStack{runConfigs: rc, log: log, enricherReg: prometheus.NewRegistry(), sinkReg: prometheus.NewRegistry(), collectReg: prometheus.NewRegistry()}
	startOn(t, ctx, st.sinkReg, func(reg prometheus.Registerer) (obs.Component, error) { return chwriter.New(*scfg, reg, log) })
	startOn(t, ctx, prometheus.NewRegistry(), func(reg prometheus.Registerer) (obs.Component, error) { return chwriter.New(*xcfg, reg, log) })
	st.enricher = startOn(t, ctx, st.enricherReg, func(reg prometheus.Registerer) (obs.Component, error) { return pipeline.New(*ecfg, reg, log) })
	collector := startOn(t, ctx, st.collectReg, func(reg prometheus.Registerer) (obs.Component, error) { return ingest.New(*ccfg, reg, log) }).(*ingest.Server)
	st.op = startPrivacyAPI(t, ctx, ccfg, collector, log)
	st.base = "http://" + collector.Addr()
	st.conn = testenv.ClickHouseDB(t, chAddr, rc.database)
	return st
}

// privacyOn switches the collector's privacy admin API on for the dev
// operator; exports read each database (the region's, and database_intl
// abroad) as a read-only user confined to it.
func privacyOn(t *testing.T, ccfg *ingest.Config, chAddr, database string) {
	t.Helper()
	ccfg.Privacy.Operators = []ingest.Operator{{Name: "dev", TokenFile: "../configs/dev-operator.token"}}
	ccfg.Privacy.Listen = "127.0.0.1:0"
	ccfg.Privacy.Export.ClickHouse.Addr, ccfg.Privacy.Export.Database = []string{chAddr}, database
	testenv.ClickHousePrivacyReader(t, chAddr, database).Apply(&ccfg.Privacy.Export.ClickHouse)
	abroad := &ccfg.Privacy.Export.Abroad
	abroad.ClickHouse.Addr, abroad.Database = []string{chAddr}, database+"_intl"
	testenv.ClickHousePrivacyReader(t, chAddr, abroad.Database).Apply(&abroad.ClickHouse)
}
