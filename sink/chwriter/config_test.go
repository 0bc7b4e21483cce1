package chwriter_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/config/configtest"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/sink/chwriter"
)

const envPrefix = "SINK"

func load(t *testing.T, path string) (chwriter.Config, error) {
	t.Helper()
	cfg := chwriter.Default()
	err := config.Load(path, envPrefix, &cfg)
	return cfg, err
}

func TestGoodConfigs(t *testing.T) {
	configtest.RunGoodConfigs(t, "testdata/good", envPrefix, load, func(t *testing.T, cfg chwriter.Config) {
		if _, err := cfg.Kafka.Opts(); err != nil {
			t.Errorf("Kafka.Opts: %v", err)
		}
		if _, err := cfg.ClickHouse.TLS.Build(); err != nil {
			t.Errorf("ClickHouse.TLS.Build: %v", err)
		}
	})
}

func TestAllKeys(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	cfg := configtest.MustLoad(t, load, "testdata/good/all-keys.yaml")
	tlsFiles := config.TLS{
		Enabled:            true,
		CAFile:             "../../internal/config/testdata/tls/ca.pem",
		CertFile:           "../../internal/config/testdata/tls/client.pem",
		KeyFile:            "../../internal/config/testdata/tls/client-key.pem",
		InsecureSkipVerify: true,
	}
	kafkaTLS, chTLS := tlsFiles, tlsFiles
	kafkaTLS.ServerName = "kafka.test"
	chTLS.ServerName = "clickhouse.test"
	want := chwriter.Config{
		Region: "eu",
		Log:    config.Log{Level: "error", Format: "json"},
		Admin:  config.Admin{Listen: "127.0.0.1:9203", DrainDelay: 5 * time.Second},
		Kafka: kafkax.Config{
			Brokers:        []string{"k1.test:9093"},
			ClientID:       "sink-eu",
			DialTimeout:    9 * time.Second,
			SessionTimeout: 10 * time.Second,
			TLS:            kafkaTLS,
			SASL: kafkax.SASL{
				Mechanism:      "SCRAM-SHA-512",
				Username:       "sink",
				Password:       "kafka-test-password",
				PasswordFile:   "testdata/secrets/kafka-password",
				AllowPlaintext: true,
			},
		},
		GroupID: "sink-eu",
		Topics: chwriter.Topics{
			Clean:    kafkax.TopicSpec{Name: "events.clean.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "delete", Retention: 168 * time.Hour},
			DLQ:      kafkax.TopicSpec{Name: "events.dlq.eu", Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "delete", Retention: 336 * time.Hour},
			Erasures: kafkax.TopicSpec{Name: "privacy.erasures.eu", Partitions: 2, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "delete", Retention: -time.Second},
			Receipts: kafkax.TopicSpec{Name: "privacy.receipts.eu", Partitions: 2, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "compact", Retention: 720 * time.Hour},
		},
		ClickHouse: chx.Config{
			Addr:           []string{"ch1.test:9440", "ch2.test:9440"},
			Username:       "sink",
			Password:       "clickhouse-test-password",
			PasswordFile:   "testdata/secrets/clickhouse-password",
			TLS:            chTLS,
			DialTimeout:    4 * time.Second,
			AllowPlaintext: true,
		},
		Database:  "analytics_eu",
		Cluster:   "consentflow",
		Batch:     chwriter.Batch{MaxRows: 10000, MaxBytes: 32 << 20, MaxWait: 500 * time.Millisecond},
		Retention: chwriter.Retention{Months: 6, Interval: 10 * time.Minute},
		Erasure:   chwriter.Erasure{Window: 5 * time.Second, MaxSubjects: 500, Timeout: 2 * time.Minute, GroupID: "sink-eu-erasures"},
		Audit:     chwriter.Audit{Enabled: true, GroupID: "sink-eu-audit"},
	}
	want.DevMode = true // all-keys.yaml sets dev_mode, with no shipped secret
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load(all-keys.yaml):\n got %#v\nwant %#v", cfg, want)
		if cfg.ClickHouse.Password != want.ClickHouse.Password || cfg.Kafka.SASL.Password != want.Kafka.SASL.Password {
			t.Errorf("secrets differ: clickhouse.password %q, kafka.sasl.password %q", cfg.ClickHouse.Password.Reveal(), cfg.Kafka.SASL.Password.Reveal())
		}
	}
	if zero := configtest.ZeroLeaves(cfg); len(zero) > 0 {
		t.Errorf("all-keys.yaml leaves these keys unset: %q", zero)
	}
}

// badConfigs maps each file in testdata/bad to the error it must produce:
// Keys are the exact FieldError keys (validation), Msg a substring of the
// error (decoding), so every bad file proves the error names the key.
var badConfigs = map[string]configtest.Bad{
	"database-hyphen.yaml":                  {Keys: []string{"database"}},
	"database-leading-digit.yaml":           {Keys: []string{"database"}},
	"database-empty.yaml":                   {Keys: []string{"database"}},
	"database-injection.yaml":               {Keys: []string{"database"}},
	"cluster-injection.yaml":                {Keys: []string{"cluster"}},
	"batch-max-rows-zero.yaml":              {Keys: []string{"batch.max_rows"}},
	"batch-max-rows-negative.yaml":          {Keys: []string{"batch.max_rows"}},
	"batch-max-rows-not-int.yaml":           {Msg: "'batch.max_rows' cannot parse"},
	"batch-max-wait-zero.yaml":              {Keys: []string{"batch.max_wait"}},
	"batch-max-wait-not-duration.yaml":      {Msg: "'batch.max_wait' time: invalid duration"},
	"batch-unknown-key.yaml":                {Msg: "'batch' has invalid keys: max_size"},
	"clickhouse-addr-empty.yaml":            {Keys: []string{"clickhouse.addr"}},
	"clickhouse-password-and-file.yaml":     {Keys: []string{"clickhouse.password"}},
	"clickhouse-password-file-missing.yaml": {Keys: []string{"clickhouse.password_file"}},
	"clickhouse-tls-ca-missing.yaml":        {Keys: []string{"clickhouse.tls.ca_file"}},
	"clickhouse-password-without-tls.yaml":  {Keys: []string{"clickhouse.tls.enabled"}, Msg: "send the password as it is"},
	"clickhouse-dial-timeout-negative.yaml": {Keys: []string{"clickhouse.dial_timeout"}},
	"clickhouse-unknown-key.yaml":           {Msg: "'clickhouse' has invalid keys: database"},
	"group-id-empty.yaml":                   {Keys: []string{"group_id"}},
	"topics-clean-cleanup-policy.yaml":      {Keys: []string{"topics.clean.cleanup_policy"}},
	"topics-dlq-name-empty.yaml":            {Keys: []string{"topics.dlq.name"}},
	"topics-raw-unknown.yaml":               {Msg: "'topics' has invalid keys: raw"},
	"kafka-sasl-username-missing.yaml":      {Keys: []string{"kafka.sasl.username"}},
	"kafka-broker-no-port.yaml":             {Keys: []string{"kafka.brokers[0]"}},
	"region-empty.yaml":                     {Keys: []string{"region"}},
	"log-format.yaml":                       {Keys: []string{"log.format"}},
	"admin-listen.yaml":                     {Keys: []string{"admin.listen"}},
	"erasure-window-zero.yaml":              {Keys: []string{"erasure.window"}},
	"erasure-max-subjects-too-many.yaml":    {Keys: []string{"erasure.max_subjects"}},
	"topics-receipts-not-compact.yaml":      {Keys: []string{"topics.receipts.cleanup_policy"}},
	"topics-erasures-retention-finite.yaml": {Keys: []string{"topics.erasures.retention"}},
}

func TestBadConfigs(t *testing.T) {
	configtest.RunBadConfigs(t, "testdata/bad", envPrefix, badConfigs, load)
}

func TestShippedConfig(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	cfg := configtest.MustLoad(t, load, "../../configs/sink.yaml")
	def := chwriter.Default()
	if cfg.Region != def.Region || cfg.GroupID != def.GroupID || cfg.Admin != def.Admin || cfg.Database != def.Database || cfg.Batch != def.Batch {
		t.Errorf("shipped region/group_id/admin/database/batch = %q %q %+v %q %+v, want the defaults", cfg.Region, cfg.GroupID, cfg.Admin, cfg.Database, cfg.Batch)
	}
	if !slices.Equal(cfg.ClickHouse.Addr, def.ClickHouse.Addr) || cfg.ClickHouse.Username != "default" || cfg.ClickHouse.Password != "" {
		t.Errorf("shipped clickhouse = %+v", cfg.ClickHouse)
	}
	if cfg.Topics.Clean.Name != def.Topics.Clean.Name || cfg.Topics.DLQ.Name != def.Topics.DLQ.Name {
		t.Errorf("shipped topics = %+v", cfg.Topics)
	}
}

// TestShippedExportConfig: the export destination's sink differs from the
// in-region one only in what it loads, where, its admin port, its
// dead-letter topic, and that the home region's sink loads the audit.
func TestShippedExportConfig(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	cfg := configtest.MustLoad(t, load, "../../configs/sink-intl.yaml")
	inRegion := configtest.MustLoad(t, load, "../../configs/sink.yaml")
	if cfg.Topics.Clean.Name != "events.export.intl" || cfg.Database != "analytics_intl" || cfg.GroupID != "sink-intl" || cfg.Admin.Listen != ":9104" ||
		cfg.Topics.Erasures.Name != "privacy.erasures.intl" || cfg.Audit.Enabled || !inRegion.Audit.Enabled {
		t.Errorf("sink-intl.yaml loads %q into %q as %q on %q, erasures from %q, audit %v (in-region %v)", cfg.Topics.Clean.Name, cfg.Database, cfg.GroupID,
			cfg.Admin.Listen, cfg.Topics.Erasures.Name, cfg.Audit.Enabled, inRegion.Audit.Enabled)
	}
	// Each destination's dead letters go to a topic of its own, kept a day.
	for _, c := range []chwriter.Config{inRegion, cfg} {
		if dlq := c.Topics.DLQ; dlq.Name != "events.dlq."+c.Region || dlq.Retention != 24*time.Hour {
			t.Errorf("%s sink: dead letters to %q kept %v, want events.dlq.%s kept 24h", c.Region, dlq.Name, dlq.Retention, c.Region)
		}
	}
	cfg.Region, cfg.Admin, cfg.GroupID, cfg.Database, cfg.Topics.Clean.Name = inRegion.Region, inRegion.Admin, inRegion.GroupID, inRegion.Database, inRegion.Topics.Clean.Name
	cfg.Topics.DLQ.Name = inRegion.Topics.DLQ.Name
	cfg.Topics.Erasures.Name, cfg.Audit = inRegion.Topics.Erasures.Name, inRegion.Audit
	if !reflect.DeepEqual(cfg, inRegion) {
		t.Errorf("sink-intl.yaml differs from sink.yaml beyond destination and port:\n%+v\n%+v", cfg, inRegion)
	}
}

func TestDefaultIsValid(t *testing.T) {
	cfg := chwriter.Default()
	if err := cfg.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

// TestValidateIsPure: Validate reads none of the files the config names
// (passwords, TLS) and changes nothing.
func TestValidateIsPure(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	configtest.CheckValidatePure(t, load, "testdata/good/all-keys.yaml")
}

func TestEnvOverrides(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("SINK_CLICKHOUSE_PASSWORD", "env-clickhouse-password")
	t.Setenv("SINK_CLICKHOUSE_ADDR", "ch1:9440,ch2:9440")
	t.Setenv("SINK_CLICKHOUSE_TLS_ENABLED", "true")
	t.Setenv("SINK_DATABASE", "analytics_eu")
	t.Setenv("SINK_BATCH_MAX_ROWS", "123")
	t.Setenv("SINK_BATCH_MAX_WAIT", "250ms")
	t.Setenv("SINK_KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("SINK_CLICKHOUSE_DIAL_TIMEOUT", "2s")
	cfg := configtest.MustLoad(t, load, "../../configs/sink.yaml")
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"clickhouse.password", cfg.ClickHouse.Password.Reveal(), "env-clickhouse-password"},
		{"clickhouse.addr", cfg.ClickHouse.Addr, []string{"ch1:9440", "ch2:9440"}},
		{"clickhouse.dial_timeout", cfg.ClickHouse.DialTimeout, 2 * time.Second},
		{"database", cfg.Database, "analytics_eu"},
		{"batch.max_rows", cfg.Batch.MaxRows, 123},
		{"batch.max_wait", cfg.Batch.MaxWait, 250 * time.Millisecond},
		{"kafka.brokers", cfg.Kafka.Brokers, []string{"k1:9092", "k2:9092"}},
		{"clickhouse.username", cfg.ClickHouse.Username, "default"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
}

func TestEnvOverrideInvalid(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("SINK_DATABASE", "analytics-eu")
	t.Setenv("SINK_BATCH_MAX_ROWS", "0")
	_, err := load(t, "../../configs/sink.yaml")
	if got, want := configtest.FieldKeys(err), []string{"batch.max_rows", "database"}; !slices.Equal(got, want) {
		t.Errorf("Load = %v, want keys %q named", err, want)
	}
}

// TestSecretsNotPrinted checks that a loaded config can be logged whole.
func TestSecretsNotPrinted(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	cfg := configtest.MustLoad(t, load, "testdata/good/all-keys.yaml")
	configtest.CheckSecretsHidden(t, cfg, "clickhouse-test-password", "kafka-test-password")
}
