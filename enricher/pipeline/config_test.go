package pipeline_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/config/configtest"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/keyring"
	"github.com/consentflow/consentflow/internal/policy"
)

const envPrefix = "ENRICHER"

// shippedKeyFile is configs/dev-pseudonym.key seen from this package: the
// shipped enricher.yaml names it relative to the repository root.
const (
	shippedKeyFile       = "../../configs/dev-pseudonym.key"
	shippedExportKeyFile = "../../configs/dev-export.key"
)

// testKey is the content of testdata/secrets/pseudonym.key.
const testKey = "test-only-pseudonym-key-0123456789abcdef"

func load(t *testing.T, path string) (pipeline.Config, error) {
	t.Helper()
	cfg := pipeline.Default()
	err := config.Load(path, envPrefix, &cfg)
	return cfg, err
}

func TestGoodConfigs(t *testing.T) {
	configtest.RunGoodConfigs(t, "testdata/good", envPrefix, load, func(t *testing.T, cfg pipeline.Config) {
		if len(cfg.Pseudonym.Key) < 32 {
			t.Errorf("pseudonym key is %d bytes after Load", len(cfg.Pseudonym.Key))
		}
		if _, err := cfg.Kafka.Opts(); err != nil {
			t.Errorf("Kafka.Opts: %v", err)
		}
	})
}

func TestAllKeys(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	cfg := configtest.MustLoad(t, load, "testdata/good/all-keys.yaml")
	want := pipeline.Config{
		Region: "eu",
		Log:    config.Log{Level: "warn", Format: "text"},
		Admin:  config.Admin{Listen: "127.0.0.1:9202", DrainDelay: 5 * time.Second},
		Kafka: kafkax.Config{
			Brokers:        []string{"k1.test:9093", "k2.test:9093", "k3.test:9093"},
			ClientID:       "enricher-eu",
			DialTimeout:    8 * time.Second,
			SessionTimeout: 10 * time.Second,
			TLS: config.TLS{
				Enabled:            true,
				CAFile:             "../../internal/config/testdata/tls/ca.pem",
				CertFile:           "../../internal/config/testdata/tls/client.pem",
				KeyFile:            "../../internal/config/testdata/tls/client-key.pem",
				ServerName:         "kafka.test",
				InsecureSkipVerify: true,
			},
			SASL: kafkax.SASL{
				Mechanism:      "SCRAM-SHA-512",
				Username:       "enricher",
				Password:       "kafka-test-password",
				PasswordFile:   "testdata/secrets/kafka-password",
				AllowPlaintext: true,
			},
		},
		GroupID: "enricher-eu",
		Topics: pipeline.Topics{
			Raw:   kafkax.TopicSpec{Name: "events.raw.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "delete", Retention: 6 * time.Hour},
			Clean: kafkax.TopicSpec{Name: "events.clean.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "delete", Retention: 168 * time.Hour},
			DLQ:   kafkax.TopicSpec{Name: "events.dlq.eu", Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "compact", Retention: 336 * time.Hour},
			Consent: kafkax.TopicSpec{Name: "privacy.consent.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2,
				CleanupPolicy: "compact", Retention: 8760 * time.Hour},
			Erasures: kafkax.TopicSpec{Name: "privacy.erasures.all", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2,
				CleanupPolicy: "compact", Retention: 87600 * time.Hour},
			ErasureRequests: kafkax.TopicSpec{Name: "privacy.erasure-requests.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2,
				CleanupPolicy: "delete", Retention: 72 * time.Hour},
			Identities: kafkax.TopicSpec{Name: "privacy.identities.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2,
				CleanupPolicy: "compact", Retention: 87600 * time.Hour},
			ErasureNotices: kafkax.TopicSpec{Name: "privacy.erasures.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2,
				CleanupPolicy: "delete", Retention: -time.Second},
			Receipts: kafkax.TopicSpec{Name: "privacy.receipts.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2,
				CleanupPolicy: "compact", Retention: 87600 * time.Hour},
		},
		Pseudonym: pipeline.Pseudonym{KeyID: "eu-2025_01", Key: testKey, KeyFile: "testdata/secrets/pseudonym.key",
			Next: pipeline.NextKey{KeyID: "eu-2026_01", Key: "test-only-next-pseudonym-key-0123456789abcdef",
				KeyFile: "testdata/secrets/next.key", From: "2026-01-01T00:00:00Z"},
			Retired: []keyring.RetiredKey{{KeyID: "eu-2024_01", KeyFile: "testdata/secrets/retired.key", Key: "test-only-retired-pseudonym-key-0123456789abcdef"}}},
		Profiles: map[string]policy.Settings{
			"in_region": {IP: "truncate", DeviceIDs: true, UserAgent: "parse", Detail: "full", Undeclared: "scrub",
				DropFields:    []string{"properties.internal_note"},
				ScrubPatterns: []policy.ScrubPattern{{Name: "order_ref", Pattern: `ORD-\d{6}`}}},
			"export": {IP: "drop", UserAgent: "drop", Detail: "coarse", Undeclared: "drop",
				DropFields:    []string{"properties.internal_note", "context.page"},
				ScrubPatterns: []policy.ScrubPattern{{Name: "order_ref", Pattern: `ORD-\d{6}`}}},
		},
		CleanProfile: "in_region",
		// Relative to all-keys.yaml's folder.
		Catalogue: pipeline.Catalogue{File: "../../configs/catalogue.yaml"},
		Export: pipeline.Export{Name: "intl", Profile: "export",
			Topic: kafkax.TopicSpec{Name: "events.export.intl", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2,
				CleanupPolicy: "delete", Retention: 72 * time.Hour},
			Pseudonym: pipeline.Pseudonym{KeyID: "intl-2025_01", Key: "test-only-export-pseudonym-key-0123456789abcd",
				KeyFile: "testdata/secrets/export.key", Next: pipeline.NextKey{KeyID: "intl-2026_01",
					Key: "test-only-export-next-key-0123456789abcdefghi", KeyFile: "testdata/secrets/export-next.key", From: "2026-01-01T00:00:00Z"},
				Retired: []keyring.RetiredKey{{KeyID: "intl-2024_01", KeyFile: "testdata/secrets/export-retired.key", Key: "test-only-retired-export-key-0123456789abcdef01"}}},
			ErasureNotices: kafkax.TopicSpec{Name: "privacy.erasures.intl", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2,
				CleanupPolicy: "delete", Retention: -time.Second}},
		Consent: pipeline.Consent{History: 8, SyncTimeout: 5 * time.Second,
			Defaults:   map[string][]string{"backend": {"analytics"}},
			Categories: map[string][]string{"c0002": {"analytics"}, "c0004": {"marketing", "third_party_sharing"}}},
		MaxPollRecords: 500, TransactionalID: "enricher-eu-0", TransactionTimeout: 20 * time.Second, DedupWindow: 5 * time.Minute, DedupMaxEntries: 1000,
		UserAgentParsesPerSecond: 50,
	}
	want.DevMode = true // all-keys.yaml sets dev_mode, with no shipped secret
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load(all-keys.yaml):\n got %#v\nwant %#v", cfg, want)
		if cfg.Pseudonym.Key != want.Pseudonym.Key || cfg.Kafka.SASL.Password != want.Kafka.SASL.Password {
			t.Errorf("secrets differ: pseudonym.key %q, kafka.sasl.password %q", cfg.Pseudonym.Key.Reveal(), cfg.Kafka.SASL.Password.Reveal())
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
	"pseudonym-key-too-short.yaml":                 {Keys: []string{"pseudonym"}, Msg: "at least 32"},
	"pseudonym-key-missing.yaml":                   {Keys: []string{"pseudonym"}},
	"pseudonym-key-id-invalid.yaml":                {Keys: []string{"pseudonym"}, Msg: "key id"},
	"pseudonym-key-id-missing.yaml":                {Keys: []string{"pseudonym"}, Msg: "key id"},
	"pseudonym-key-and-file.yaml":                  {Keys: []string{"pseudonym.key"}, Msg: "pseudonym.key_file"},
	"pseudonym-key-file-missing.yaml":              {Keys: []string{"pseudonym.key_file"}},
	"pseudonym-unknown-key.yaml":                   {Msg: "'pseudonym' has invalid keys: key_path"},
	"group-id-empty.yaml":                          {Keys: []string{"group_id"}},
	"max-poll-records-negative.yaml":               {Keys: []string{"max_poll_records"}},
	"max-poll-records-not-int.yaml":                {Msg: "'max_poll_records' cannot parse"},
	"topics-raw-replication-negative.yaml":         {Keys: []string{"topics.raw.replication_factor"}},
	"topics-clean-cleanup-policy.yaml":             {Keys: []string{"topics.clean.cleanup_policy"}},
	"topics-dlq-retention-too-short.yaml":          {Keys: []string{"topics.dlq.retention"}},
	"topics-erasure-notices-retention-finite.yaml": {Keys: []string{"topics.erasure_notices.retention"}},
	"topics-raw-retention-not-duration.yaml":       {Msg: "'topics.raw.retention' time: invalid duration"},
	"topics-raw-retention-forever.yaml":            {Keys: []string{"topics.raw.retention"}, Msg: "raw identifiers"},
	"topics-unknown-topic.yaml":                    {Msg: "'topics' has invalid keys: export"},
	"kafka-brokers-empty.yaml":                     {Keys: []string{"kafka.brokers"}},
	"kafka-sasl-mechanism.yaml":                    {Keys: []string{"kafka.sasl.mechanism"}},
	"kafka-sasl-password-missing.yaml":             {Keys: []string{"kafka.sasl.password"}},
	"kafka-tls-key-missing.yaml":                   {Keys: []string{"kafka.tls.key_file"}},
	"region-empty.yaml":                            {Keys: []string{"region"}},
	"log-level.yaml":                               {Keys: []string{"log.level"}},
	"admin-listen.yaml":                            {Keys: []string{"admin.listen"}},
	"unknown-key.yaml":                             {Msg: "has invalid keys: http"},
	"profile-ip-invalid.yaml":                      {Keys: []string{"profiles.in_region"}, Msg: `ip: "keep" is not truncate or drop`},
	"profile-scrub-pattern-empty-match.yaml":       {Keys: []string{"profiles.in_region"}, Msg: "scrub_patterns[0].pattern"},
	"export-profile-not-stricter.yaml":             {Keys: []string{"profiles.export"}, Msg: "not stricter"},
	"export-key-same-as-in-region.yaml":            {Keys: []string{"export.pseudonym.key"}, Msg: "must differ"},
	"export-key-missing.yaml":                      {Keys: []string{"export.pseudonym"}},
	"export-next-key-same-as-in-region.yaml":       {Keys: []string{"export.pseudonym.next.key"}, Msg: "must differ"},
	"export-retired-key-same-as-in-region.yaml":    {Keys: []string{"export.pseudonym.retired[0].key_file"}, Msg: "must differ"},
	"pseudonym-retired-id-in-service.yaml":         {Keys: []string{"pseudonym.retired[0].key_id"}, Msg: "is also pseudonym.key_id"},
	"pseudonym-retired-no-file.yaml":               {Keys: []string{"pseudonym.retired[0]"}, Msg: "needs key_id and key_file"},
	"consent-sync-timeout-too-long.yaml":           {Keys: []string{"consent.sync_timeout"}, Msg: "half of transaction_timeout"},
	"pseudonym-next-from-invalid.yaml":             {Keys: []string{"pseudonym.next.from"}},
	"consent-default-unknown-purpose.yaml":         {Keys: []string{"consent.defaults.backend"}, Msg: `unknown purpose "profiling"`},
	"consent-history-one.yaml":                     {Keys: []string{"consent.history"}, Msg: "at least 2"},
	"topics-consent-not-compact.yaml":              {Keys: []string{"topics.consent.cleanup_policy"}},
	"export-profile-scrubs-undeclared.yaml":        {Keys: []string{"profiles.export.undeclared"}, Msg: "must be drop"},
	"catalogue-context-off-allow-list.yaml":        {Keys: []string{"catalogue.file"}, Msg: "context-off-allow-list.yaml:4: context.traits: is not kept by any profile"},
	"catalogue-missing.yaml":                       {Keys: []string{"catalogue.file"}, Msg: "catalogues/none.yaml"},
}

func TestBadConfigs(t *testing.T) {
	configtest.RunBadConfigs(t, "testdata/bad", envPrefix, badConfigs, load)
}

func TestShippedConfig(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("ENRICHER_PSEUDONYM_KEY_FILE", shippedKeyFile)
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_KEY_FILE", shippedExportKeyFile)
	t.Setenv("ENRICHER_DEV_MODE", "true") // the development keys
	cfg := configtest.MustLoad(t, load, "../../configs/enricher.yaml")
	def := pipeline.Default()
	if cfg.Region != def.Region || cfg.GroupID != def.GroupID || cfg.Admin != def.Admin || cfg.MaxPollRecords != def.MaxPollRecords {
		t.Errorf("shipped region/group_id/admin/max_poll_records = %q %q %+v %d, want the defaults", cfg.Region, cfg.GroupID, cfg.Admin, cfg.MaxPollRecords)
	}
	for _, c := range []struct {
		key       string
		got, want kafkax.TopicSpec
	}{
		{"topics.raw", cfg.Topics.Raw, def.Topics.Raw},
		{"topics.clean", cfg.Topics.Clean, def.Topics.Clean},
		{"topics.dlq", cfg.Topics.DLQ, def.Topics.DLQ},
	} {
		if c.got.Name != c.want.Name || c.got.Retention != c.want.Retention {
			t.Errorf("shipped %s = %+v, want name and retention of the default %+v", c.key, c.got, c.want)
		}
	}
	if cfg.Pseudonym.KeyID != "k1" || len(cfg.Pseudonym.Key) < 32 {
		t.Errorf("shipped pseudonym: key_id %q, key of %d bytes", cfg.Pseudonym.KeyID, len(cfg.Pseudonym.Key))
	}
}

// TestShippedConfigNeedsKey checks the shipped file holds no key: without
// ENRICHER_PSEUDONYM_KEY(_FILE) and ENRICHER_EXPORT_PSEUDONYM_KEY(_FILE)
// start-up fails, naming both.
func TestShippedConfigNeedsKey(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	_, err := load(t, "../../configs/enricher.yaml")
	if got := configtest.FieldKeys(err); !slices.Equal(got, []string{"export.pseudonym", "pseudonym"}) {
		t.Errorf("Load without a key = %v, want pseudonym and export.pseudonym named", err)
	}
}

func TestDefaultNeedsOnlyKeys(t *testing.T) {
	cfg := pipeline.Default()
	if err := config.Check(&cfg); !slices.Equal(configtest.FieldKeys(err), []string{"export.pseudonym", "pseudonym"}) {
		t.Errorf("Default().Validate() = %v, want only the two keys missing", err)
	}
	cfg.Pseudonym = pipeline.Pseudonym{KeyID: "k1", Key: testKey}
	cfg.Export.Pseudonym.Key = "test-only-export-key-0123456789abcdef"
	if err := config.Check(&cfg); err != nil {
		t.Errorf("Default() with keys: %v", err)
	}
}

// TestValidateIsPure: Validate reads none of the files the config names
// (keys, the Kafka password, TLS, the catalogue) and changes nothing.
func TestValidateIsPure(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	configtest.CheckValidatePure(t, load, "testdata/good/all-keys.yaml")
}

// TestResolveFillsDefaults: Resolve, and only Resolve, fills in a zero
// max_poll_records and an empty transactional_id.
func TestResolveFillsDefaults(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	cfg := configtest.MustLoad(t, load, "testdata/good/max-poll-records-zero.yaml")
	if cfg.MaxPollRecords != 10000 || cfg.TransactionalID != "enricher-cn-"+host {
		t.Errorf("loaded max_poll_records %d, transactional_id %q; want 10000 and enricher-cn-%s", cfg.MaxPollRecords, cfg.TransactionalID, host)
	}

	unresolved := pipeline.Default()
	unresolved.MaxPollRecords = 0
	unresolved.Pseudonym = pipeline.Pseudonym{KeyID: "k1", Key: testKey}
	unresolved.Export.Pseudonym.Key = "test-only-export-key-0123456789abcdef"
	err = unresolved.Validate()
	if got := configtest.FieldKeys(err); !slices.Equal(got, []string{"max_poll_records", "transactional_id"}) {
		t.Errorf("Validate of an unresolved config = %v, want max_poll_records and transactional_id named", err)
	}
	if unresolved.MaxPollRecords != 0 || unresolved.TransactionalID != "" {
		t.Errorf("Validate filled in max_poll_records %d, transactional_id %q", unresolved.MaxPollRecords, unresolved.TransactionalID)
	}
}

func TestEnvOverrides(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("ENRICHER_PSEUDONYM_KEY_FILE", "testdata/secrets/pseudonym.key")
	t.Setenv("ENRICHER_PSEUDONYM_KEY_ID", "k9")
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_KEY_FILE", shippedExportKeyFile)
	t.Setenv("ENRICHER_DEV_MODE", "true") // the development export key
	t.Setenv("ENRICHER_KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("ENRICHER_GROUP_ID", "enricher-eu")
	t.Setenv("ENRICHER_MAX_POLL_RECORDS", "250")
	t.Setenv("ENRICHER_TOPICS_CLEAN_NAME", "events.clean.eu")
	t.Setenv("ENRICHER_TOPICS_DLQ_RETENTION", "24h")
	t.Setenv("ENRICHER_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
	t.Setenv("ENRICHER_KAFKA_SASL_USERNAME", "enricher")
	t.Setenv("ENRICHER_KAFKA_SASL_PASSWORD_FILE", "testdata/secrets/kafka-password")
	cfg := configtest.MustLoad(t, load, "../../configs/enricher.yaml")
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"pseudonym.key", cfg.Pseudonym.Key.Reveal(), testKey},
		{"pseudonym.key_id", cfg.Pseudonym.KeyID, "k9"},
		{"kafka.brokers", cfg.Kafka.Brokers, []string{"k1:9092", "k2:9092"}},
		{"group_id", cfg.GroupID, "enricher-eu"},
		{"max_poll_records", cfg.MaxPollRecords, 250},
		{"topics.clean.name", cfg.Topics.Clean.Name, "events.clean.eu"},
		{"topics.dlq.retention", cfg.Topics.DLQ.Retention, 24 * time.Hour},
		{"kafka.sasl.password", cfg.Kafka.SASL.Password.Reveal(), "kafka-test-password"},
		{"topics.raw.name", cfg.Topics.Raw.Name, "events.raw.cn"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
}

func TestEnvKeyWithKeyFileInFile(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	// A key by environment beside a key_file in the file is refused, so a
	// stale value cannot silently win; the error must not show the key.
	t.Setenv("ENRICHER_PSEUDONYM_KEY", "env-pseudonym-key-0123456789abcdef0123")
	_, err := load(t, "testdata/good/minimal.yaml")
	if got := configtest.FieldKeys(err); !slices.Equal(got, []string{"pseudonym.key"}) {
		t.Fatalf("Load = %v, want pseudonym.key named", err)
	}
	if strings.Contains(err.Error(), "env-pseudonym-key") || strings.Contains(err.Error(), testKey) {
		t.Errorf("error %q reveals a key", err)
	}
}

// TestShippedConfigKeyFromEnv documents a gap: configs/enricher.yaml sets
// pseudonym.key_file, and an empty ENRICHER_PSEUDONYM_KEY_FILE does not
// clear it (viper treats empty variables as unset), so the documented
// ENRICHER_PSEUDONYM_KEY cannot be used with the shipped file.
func TestShippedConfigKeyFromEnv(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("ENRICHER_PSEUDONYM_KEY", "env-pseudonym-key-0123456789abcdef0123")
	t.Setenv("ENRICHER_PSEUDONYM_KEY_FILE", "")
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_KEY", "env-export-key-0123456789abcdef0123456")
	cfg, err := load(t, "../../configs/enricher.yaml")
	if err != nil {
		t.Fatalf("Load with ENRICHER_PSEUDONYM_KEY: %v", err)
	}
	if cfg.Pseudonym.Key.Reveal() != "env-pseudonym-key-0123456789abcdef0123" {
		t.Errorf("pseudonym.key not taken from the environment")
	}
}

// TestSecretsNotPrinted checks that a loaded config can be logged whole.
func TestSecretsNotPrinted(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	cfg := configtest.MustLoad(t, load, "testdata/good/all-keys.yaml")
	configtest.CheckSecretsHidden(t, cfg, testKey, "kafka-test-password")
}
