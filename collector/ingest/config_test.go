package ingest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/config/configtest"
	"github.com/consentflow/consentflow/internal/consenttoken"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/keyring"
)

const envPrefix = "COLLECTOR"

func load(t *testing.T, path string) (ingest.Config, error) {
	t.Helper()
	cfg := ingest.Default()
	err := config.Load(path, envPrefix, &cfg)
	return cfg, err
}

// loadYAML writes yaml to a temporary file and loads it.
func loadYAML(t *testing.T, yaml string) (ingest.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return load(t, path)
}

func TestGoodConfigs(t *testing.T) {
	configtest.RunGoodConfigs(t, "testdata/good", envPrefix, load, func(t *testing.T, cfg ingest.Config) {
		// The TLS files and SASL settings must also build a client.
		if _, err := cfg.Kafka.Opts(); err != nil {
			t.Errorf("Kafka.Opts: %v", err)
		}
	})
}

func TestAllKeys(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	cfg := configtest.MustLoad(t, load, "testdata/good/all-keys.yaml")
	want := ingest.Config{
		Region: "eu",
		Log:    config.Log{Level: "debug", Format: "text"},
		Admin:  config.Admin{Listen: "127.0.0.1:9201", DrainDelay: 5 * time.Second},
		HTTP: ingest.HTTP{
			Listen:              "127.0.0.1:8181",
			ReadHeaderTimeout:   2 * time.Second,
			ReadTimeout:         20 * time.Second,
			BodyTimeout:         15 * time.Second,
			WriteTimeout:        25 * time.Second,
			IdleTimeout:         90 * time.Second,
			MaxRequestBytes:     1 << 20,
			MaxEventBytes:       64 << 10,
			ProduceTimeout:      4 * time.Second,
			MaxJSONDepth:        16,
			MaxJSONKeys:         500,
			MaxBufferedRecords:  5000,
			MaxInFlightRequests: 64,
			MaxBodyMemoryBytes:  64 << 20,
			MaxEventAge:         72 * time.Hour,
			MaxFutureSkew:       10 * time.Minute,
		},
		Kafka: kafkax.Config{
			Brokers:        []string{"k1.test:9093", "k2.test:9093"},
			ClientID:       "collector-eu",
			DialTimeout:    7 * time.Second,
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
				Username:       "collector",
				Password:       "kafka-test-password",
				PasswordFile:   "testdata/secrets/kafka-password",
				AllowPlaintext: true,
			},
		},
		Topics: ingest.Topics{
			Raw: kafkax.TopicSpec{
				Name: "events.raw.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "delete", Retention: 12 * time.Hour,
			},
			Consent:         kafkax.TopicSpec{Name: "privacy.consent", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "compact", Retention: 720 * time.Hour},
			Erasures:        kafkax.TopicSpec{Name: "privacy.erasures.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "compact", Retention: 8760 * time.Hour},
			ErasureRequests: kafkax.TopicSpec{Name: "privacy.erasure-requests.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "delete", Retention: 72 * time.Hour},
			Receipts:        kafkax.TopicSpec{Name: "privacy.receipts.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "compact", Retention: 8760 * time.Hour},
			Identities:      kafkax.TopicSpec{Name: "privacy.identities.eu", Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2, CleanupPolicy: "compact", Retention: 8760 * time.Hour},
		},
		Sources: []ingest.Source{
			{Name: "web", WriteKey: "web-write-key-0001", Region: "eu", RateLimit: ingest.RateLimit{EventsPerSecond: 500, Burst: 1000}, Trust: ingest.TrustClient},
			{Name: "server", WriteKey: "server-write-key-01", TrustContextIP: true, Trust: ingest.TrustServer},
			{Name: "ios", WriteKey: "file-write-key-0123456789", WriteKeyFile: "testdata/secrets/write-key", Trust: ingest.TrustClient},
			{Name: "legacy", WriteKey: "legacy-write-key-01", Enabled: new(false), Trust: ingest.TrustClient},
		},
		TrustedProxies: []string{"10.0.0.0/8", "fd00::/8"},
		CORS:           ingest.CORS{AllowedOrigins: []string{"https://shop.example", "http://localhost:3000"}},
		Redirect:       ingest.Redirect{AllowedHosts: []string{"shop.example", "*.shop.example"}},
		Privacy: ingest.Privacy{Listen: "0.0.0.0:9205", AllowPlaintext: true, ReadHeaderTimeout: 3 * time.Second, ReadTimeout: 8 * time.Second,
			WriteTimeout: 20 * time.Second, IdleTimeout: 30 * time.Second,
			TLS: config.ServerTLS{CertFile: "../../internal/config/testdata/tls/client.pem", KeyFile: "../../internal/config/testdata/tls/client-key.pem",
				ClientCAFile: "../../internal/config/testdata/tls/ca.pem"},
			Operators: []ingest.Operator{
				{Name: "dpo", TokenFile: "testdata/secrets/operator-token", Token: config.Secret(strings.Repeat("a", 63) + "1")},
				{Name: "support", TokenFile: "testdata/secrets/operator-token-2", Token: config.Secret(strings.Repeat("b", 63) + "2")},
			},
			Pseudonym: keyring.Config{KeyID: "eu-2025_01", Key: "test-only-collector-pseudonym-key-0123456789", KeyFile: "testdata/secrets/pseudonym.key",
				Next:    keyring.NextKey{KeyID: "eu-2026_01", Key: "test-only-collector-next-pseudonym-key-012345", KeyFile: "testdata/secrets/next.key", From: "2026-01-01T00:00:00Z"},
				Retired: []keyring.RetiredKey{{KeyID: "eu-2024_01", KeyFile: "testdata/secrets/retired.key", Key: "test-only-retired-pseudonym-key-0123456789abcdef"}}},
			Export: ingest.PrivacyExport{
				ClickHouse: chx.Config{Addr: []string{"ch1.test:9440"}, Username: "privacy_reader", Password: "clickhouse-test-password",
					PasswordFile: "testdata/secrets/clickhouse-password", DialTimeout: 4 * time.Second, AllowPlaintext: true, TLS: config.TLS{Enabled: true,
						CAFile: "../../internal/config/testdata/tls/ca.pem", CertFile: "../../internal/config/testdata/tls/client.pem",
						KeyFile: "../../internal/config/testdata/tls/client-key.pem", ServerName: "clickhouse.test", InsecureSkipVerify: true}},
				Database: "analytics_eu", MaxRows: 5000, Timeout: 10 * time.Second,
				Abroad: ingest.PrivacyAbroad{Name: "intl", Database: "analytics_intl",
					ClickHouse: chx.Config{Addr: []string{"ch2.test:9440"}, Username: "privacy_reader_intl", Password: "clickhouse-test-password",
						PasswordFile: "testdata/secrets/clickhouse-password", DialTimeout: 3 * time.Second, AllowPlaintext: true, TLS: config.TLS{Enabled: true,
							CAFile: "../../internal/config/testdata/tls/ca.pem", CertFile: "../../internal/config/testdata/tls/client.pem",
							KeyFile: "../../internal/config/testdata/tls/client-key.pem", ServerName: "clickhouse-intl.test", InsecureSkipVerify: true}},
					Pseudonym: keyring.Config{KeyID: "intl-2025_01", Key: "test-only-export-pseudonym-key-0123456789abcd", KeyFile: "testdata/secrets/export.key",
						Next:    keyring.NextKey{KeyID: "intl-2026_01", Key: "test-only-export-next-key-0123456789abcdefghi", KeyFile: "testdata/secrets/export-next.key", From: "2026-01-01T00:00:00Z"},
						Retired: []keyring.RetiredKey{{KeyID: "intl-2024_01", KeyFile: "testdata/secrets/export-retired.key", Key: "test-only-retired-export-key-0123456789abcdef01"}}}}},
		},
		ConsentTokens: consenttoken.Config{Keys: []consenttoken.KeyConfig{
			{KeyID: "ct-2026", Key: "test-only-consent-token-key-0123456789abcdef", KeyFile: "testdata/secrets/consent-token.key"}},
			MaxLifetime: 30 * time.Minute, Leeway: 30 * time.Second},
	}
	want.DevMode = true // all-keys.yaml sets dev_mode, with no shipped secret
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load(all-keys.yaml):\n got %#v\nwant %#v", cfg, want)
		// %#v redacts secrets; show them where they differ.
		if cfg.Kafka.SASL.Password != want.Kafka.SASL.Password {
			t.Errorf("kafka.sasl.password = %q", cfg.Kafka.SASL.Password.Reveal())
		}
	}
	// all-keys.yaml must keep setting every key as keys are added.
	if zero := configtest.ZeroLeaves(cfg); len(zero) > 0 {
		t.Errorf("all-keys.yaml leaves these keys unset: %q", zero)
	}
}

// badConfigs maps each file in testdata/bad to the error it must produce:
// Keys are the exact FieldError keys (validation), Msg a substring of the
// error (decoding), so every bad file proves the error names the key.
var badConfigs = map[string]configtest.Bad{
	"http-produce-timeout-not-shorter.yaml":    {Keys: []string{"http.produce_timeout"}},
	"http-produce-timeout-not-duration.yaml":   {Msg: "'http.produce_timeout' time: invalid duration"},
	"http-produce-timeout-under-1s.yaml":       {Keys: []string{"http.produce_timeout"}, Msg: "at least 1s"},
	"http-produce-timeout-bare-int.yaml":       {Msg: "'http.produce_timeout' 5 has no unit"},
	"http-read-timeout-zero.yaml":              {Keys: []string{"http.read_timeout"}},
	"http-body-timeout-zero.yaml":              {Keys: []string{"http.body_timeout"}},
	"http-body-timeout-over-read.yaml":         {Keys: []string{"http.body_timeout"}, Msg: "at most http.read_timeout"},
	"http-max-body-memory-too-small.yaml":      {Keys: []string{"http.max_body_memory_bytes"}, Msg: "at least 1114112"},
	"http-idle-timeout-negative.yaml":          {Keys: []string{"http.idle_timeout"}},
	"http-listen-no-port.yaml":                 {Keys: []string{"http.listen"}},
	"http-max-event-over-request.yaml":         {Keys: []string{"http.max_event_bytes"}},
	"http-max-request-bytes-negative.yaml":     {Keys: []string{"http.max_event_bytes", "http.max_request_bytes"}},
	"http-max-request-bytes-not-int.yaml":      {Msg: "'http.max_request_bytes' cannot parse"},
	"sources-empty.yaml":                       {Keys: []string{"sources"}},
	"sources-missing.yaml":                     {Keys: []string{"sources"}},
	"source-write-key-short.yaml":              {Keys: []string{"sources[0].write_key"}},
	"source-write-key-missing.yaml":            {Keys: []string{"sources[0].write_key"}},
	"source-name-missing.yaml":                 {Keys: []string{"sources[0].name"}},
	"source-name-duplicate.yaml":               {Keys: []string{"sources[1].name"}},
	"source-write-key-and-file.yaml":           {Keys: []string{"sources[0].write_key"}},
	"source-write-key-file-missing.yaml":       {Keys: []string{"sources[0].write_key_file"}},
	"source-unknown-key.yaml":                  {Msg: "'sources[0]' has invalid keys: writekey"},
	"source-trust-unknown.yaml":                {Keys: []string{"sources[0].trust"}, Msg: `got "admin"`},
	"http-max-event-age-zero.yaml":             {Keys: []string{"http.max_event_age"}},
	"http-max-future-skew-too-long.yaml":       {Keys: []string{"http.max_future_skew"}},
	"consent-tokens-key-file-missing.yaml":     {Keys: []string{"consent_tokens.keys[0].key_file"}, Msg: "does-not-exist"},
	"consent-tokens-key-id-duplicate.yaml":     {Keys: []string{"consent_tokens.keys[1].key_id"}, Msg: `duplicate key id "ct1"`},
	"consent-tokens-max-lifetime-zero.yaml":    {Keys: []string{"consent_tokens.max_lifetime"}},
	"kafka-brokers-empty.yaml":                 {Keys: []string{"kafka.brokers"}},
	"kafka-broker-no-port.yaml":                {Keys: []string{"kafka.brokers[0]"}},
	"kafka-dial-timeout-negative.yaml":         {Keys: []string{"kafka.dial_timeout"}},
	"kafka-sasl-mechanism.yaml":                {Keys: []string{"kafka.sasl.mechanism"}},
	"kafka-sasl-username-missing.yaml":         {Keys: []string{"kafka.sasl.username"}},
	"kafka-sasl-password-missing.yaml":         {Keys: []string{"kafka.sasl.password"}},
	"kafka-sasl-password-and-file.yaml":        {Keys: []string{"kafka.sasl.password"}},
	"kafka-sasl-password-file-missing.yaml":    {Keys: []string{"kafka.sasl.password_file"}},
	"kafka-sasl-unknown-key.yaml":              {Msg: "'kafka.sasl' has invalid keys: passwd"},
	"kafka-sasl-plain-without-tls.yaml":        {Keys: []string{"kafka.sasl.mechanism"}, Msg: "kafka.sasl.allow_plaintext"},
	"kafka-tls-ca-missing.yaml":                {Keys: []string{"kafka.tls.ca_file"}},
	"kafka-tls-cert-without-key.yaml":          {Keys: []string{"kafka.tls.cert_file"}},
	"topics-raw-cleanup-policy.yaml":           {Keys: []string{"topics.raw.cleanup_policy"}},
	"topics-raw-name-empty.yaml":               {Keys: []string{"topics.raw.name"}},
	"topics-raw-partitions-negative.yaml":      {Keys: []string{"topics.raw.partitions"}},
	"topics-raw-retention-not-duration.yaml":   {Msg: "'topics.raw.retention' time: invalid duration"},
	"topics-raw-retention-forever.yaml":        {Keys: []string{"topics.raw.retention"}, Msg: "raw identifiers"},
	"topics-identities-not-compact.yaml":       {Keys: []string{"topics.identities.cleanup_policy"}, Msg: "must be compact"},
	"topics-erasures-cleanup-policy.yaml":      {Keys: []string{"topics.erasures.cleanup_policy"}},
	"privacy-operator-name-missing.yaml":       {Keys: []string{"privacy.operators[0].name"}},
	"privacy-operator-name-duplicate.yaml":     {Keys: []string{"privacy.operators[1].name"}, Msg: `duplicate operator name "dpo"`},
	"privacy-operator-token-file-missing.yaml": {Keys: []string{"privacy.operators[0].token_file"}, Msg: "does-not-exist"},
	"privacy-operator-token-file-unset.yaml":   {Keys: []string{"privacy.operators[0].token_file"}, Msg: "is required"},
	"privacy-operator-token-short.yaml":        {Keys: []string{"privacy.operators[0].token_file"}, Msg: "at least 32"},
	"privacy-operator-token-not-bearer.yaml":   {Keys: []string{"privacy.operators[0].token_file"}, Msg: "bearer token"},
	"privacy-operator-token-shared.yaml":       {Keys: []string{"privacy.operators[1].token_file"}, Msg: `same token as operator "dpo"`},
	"privacy-operator-token-inline.yaml":       {Msg: "'privacy.operators[0]' has invalid keys: token"},
	"privacy-abroad-database-is-region.yaml":   {Keys: []string{"privacy.export.abroad.database"}, Msg: "the region's database"},
	"privacy-abroad-key-missing.yaml":          {Keys: []string{"privacy.export.abroad.pseudonym"}, Msg: "COLLECTOR_PRIVACY_EXPORT_ABROAD_PSEUDONYM_KEY"},
	"region-empty.yaml":                        {Keys: []string{"region"}},
	"log-level.yaml":                           {Keys: []string{"log.level"}},
	"log-format.yaml":                          {Keys: []string{"log.format"}},
	"admin-listen.yaml":                        {Keys: []string{"admin.listen"}},
	"privacy-listen-not-loopback.yaml":         {Keys: []string{"privacy.listen"}, Msg: "privacy.tls.cert_file"},
	"privacy-listen-every-interface.yaml":      {Keys: []string{"privacy.listen"}, Msg: "not a loopback address"},
	"privacy-read-timeout-zero.yaml":           {Keys: []string{"privacy.read_timeout"}},
	"privacy-write-timeout-not-longer.yaml":    {Keys: []string{"privacy.write_timeout"}, Msg: "privacy.export.timeout"},
	"privacy-tls-key-missing.yaml":             {Keys: []string{"privacy.tls.key_file"}},
	"privacy-tls-client-ca-without-cert.yaml":  {Keys: []string{"privacy.tls.client_ca_file"}},
	"trusted-proxy-not-cidr.yaml":              {Keys: []string{"trusted_proxies[1]"}},
	"unknown-key.yaml":                         {Msg: "has invalid keys: regoin"},
	"unknown-nested-key.yaml":                  {Msg: "'http' has invalid keys: listen_addr"},
}

func TestBadConfigs(t *testing.T) {
	configtest.RunBadConfigs(t, "testdata/bad", envPrefix, badConfigs, load)
}

func TestShippedConfig(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("COLLECTOR_DEV_MODE", "true") // its demo write keys
	cfg := configtest.MustLoad(t, load, "../../configs/collector.yaml")
	def := ingest.Default()
	// The privacy API listens on loopback only, without TLS.
	if p := cfg.Privacy; p.Listen != def.Privacy.Listen || !config.IsLoopback(p.Listen) || p.TLS.Enabled() || p.AllowPlaintext ||
		p.ReadHeaderTimeout != def.Privacy.ReadHeaderTimeout || p.ReadTimeout != def.Privacy.ReadTimeout || p.WriteTimeout != def.Privacy.WriteTimeout || p.IdleTimeout != def.Privacy.IdleTimeout {
		t.Errorf("shipped privacy listener = %q %+v, want the defaults (%q, loopback)", p.Listen, p, def.Privacy.Listen)
	}
	if cfg.Region != "cn" || cfg.Admin != def.Admin || cfg.HTTP != def.HTTP {
		t.Errorf("shipped region/admin/http = %q %+v %+v, want the defaults %+v %+v", cfg.Region, cfg.Admin, cfg.HTTP, def.Admin, def.HTTP)
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{"127.0.0.1:9092"}) || cfg.Kafka.SASL.Mechanism != "" || cfg.Kafka.TLS.Enabled {
		t.Errorf("shipped kafka = %+v", cfg.Kafka)
	}
	if cfg.Topics.Raw.Name != "events.raw.cn" || cfg.Topics.Raw.Retention != 6*time.Hour {
		t.Errorf("shipped topics.raw = %+v", cfg.Topics.Raw)
	}
	// A web page's key and a backend's, for development.
	if len(cfg.Sources) != 2 || cfg.Sources[0].Name != "demo" || cfg.Sources[0].WriteKey.Reveal() != "demo-write-key" || cfg.Sources[0].IsServer() ||
		cfg.Sources[1].Name != "demo-backend" || cfg.Sources[1].WriteKey.Reveal() != "demo-backend-write-key" || !cfg.Sources[1].IsServer() {
		t.Errorf("shipped sources = %+v", cfg.Sources)
	}
	if len(cfg.ConsentTokens.Keys) != 0 {
		t.Errorf("shipped consent_tokens.keys = %+v, want none", cfg.ConsentTokens.Keys)
	}
	if len(cfg.TrustedProxies) != 0 {
		t.Errorf("shipped trusted_proxies = %q, want none", cfg.TrustedProxies)
	}
	if e := cfg.Topics.Erasures; e.Name != "privacy.erasures" || e.CleanupPolicy != "compact" {
		t.Errorf("shipped topics.erasures = %+v, want privacy.erasures, compacted", e)
	}
	// The dev operator is commented out: its path is relative to the
	// repository root, and the shipped file is also loaded from elsewhere.
	if len(cfg.Privacy.Operators) != 0 {
		t.Errorf("shipped privacy.operators = %+v, want none", cfg.Privacy.Operators)
	}
}

// TestDevOperatorToken checks configs/dev-operator.token, the token the
// shipped config's commented-out dev operator and the README use, is valid.
func TestDevOperatorToken(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	b, err := os.ReadFile("../../configs/dev-operator.token")
	if err != nil {
		t.Fatal(err)
	}
	if tok := strings.TrimRight(string(b), "\n"); len(tok) != 64 || strings.Trim(tok, "0123456789abcdef") != "" {
		t.Errorf("dev-operator.token = %q, want 64 hex characters", tok)
	}
	cfg, err := loadYAML(t, "dev_mode: true\nsources:\n  - name: app\n    write_key: app-write-key\nprivacy:\n  pseudonym:\n    key_file: ../../configs/dev-pseudonym.key\n  operators:\n    - name: dev\n      token_file: ../../configs/dev-operator.token\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Privacy.Operators[0].Token.Reveal(); got != strings.TrimRight(string(b), "\n") {
		t.Errorf("token = %q, want the file's without its newline", got)
	}
}

func TestDefaultNeedsOnlySources(t *testing.T) {
	cfg := ingest.Default()
	if err := cfg.Validate(); !slices.Equal(configtest.FieldKeys(err), []string{"sources"}) {
		t.Errorf("Default().Validate() = %v, want only sources missing", err)
	}
	cfg.Sources = []ingest.Source{{Name: "s", WriteKey: "12345678"}}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Default() with a source: %v", err)
	}
}

// TestValidateIsPure: Validate reads none of the files the config names
// (write keys, tokens, keys, passwords, TLS) and changes nothing.
func TestValidateIsPure(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	configtest.CheckValidatePure(t, load, "testdata/good/all-keys.yaml")
}

// TestResolveDefaultsTrust: Resolve makes an unset trust TrustClient;
// Validate accepts it unset and leaves it so.
func TestResolveDefaultsTrust(t *testing.T) {
	cfg := ingest.Default()
	cfg.Sources = []ingest.Source{{Name: "s", WriteKey: "12345678"}}
	if err := cfg.Validate(); err != nil || cfg.Sources[0].Trust != "" {
		t.Errorf("Validate = %v, trust %q; want no error and trust left unset", err, cfg.Sources[0].Trust)
	}
	if err := cfg.Resolve(); err != nil || cfg.Sources[0].Trust != ingest.TrustClient {
		t.Errorf("Resolve = %v, trust %q; want %q", err, cfg.Sources[0].Trust, ingest.TrustClient)
	}
}

func TestEnvOverrides(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("COLLECTOR_KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("COLLECTOR_HTTP_LISTEN", "127.0.0.1:18080")
	t.Setenv("COLLECTOR_HTTP_PRODUCE_TIMEOUT", "2s")
	t.Setenv("COLLECTOR_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
	t.Setenv("COLLECTOR_KAFKA_SASL_USERNAME", "collector")
	t.Setenv("COLLECTOR_KAFKA_SASL_PASSWORD", "env-kafka-password")
	t.Setenv("COLLECTOR_KAFKA_TLS_ENABLED", "true")
	t.Setenv("COLLECTOR_KAFKA_TLS_CA_FILE", "../../internal/config/testdata/tls/ca.pem")
	t.Setenv("COLLECTOR_TOPICS_RAW_NAME", "events.raw.eu")
	t.Setenv("COLLECTOR_TRUSTED_PROXIES", "10.0.0.0/8,192.168.0.0/16")
	t.Setenv("COLLECTOR_REGION", "eu")
	t.Setenv("COLLECTOR_DEV_MODE", "true") // the shipped demo write keys
	cfg := configtest.MustLoad(t, load, "../../configs/collector.yaml")
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"kafka.brokers", cfg.Kafka.Brokers, []string{"k1:9092", "k2:9092"}},
		{"http.listen", cfg.HTTP.Listen, "127.0.0.1:18080"},
		{"http.produce_timeout", cfg.HTTP.ProduceTimeout, 2 * time.Second},
		{"kafka.sasl.mechanism", cfg.Kafka.SASL.Mechanism, "SCRAM-SHA-256"},
		{"kafka.sasl.username", cfg.Kafka.SASL.Username, "collector"},
		{"kafka.sasl.password", cfg.Kafka.SASL.Password.Reveal(), "env-kafka-password"},
		{"kafka.tls.enabled", cfg.Kafka.TLS.Enabled, true},
		{"kafka.tls.ca_file", cfg.Kafka.TLS.CAFile, "../../internal/config/testdata/tls/ca.pem"},
		{"topics.raw.name", cfg.Topics.Raw.Name, "events.raw.eu"},
		{"trusted_proxies", cfg.TrustedProxies, []string{"10.0.0.0/8", "192.168.0.0/16"}},
		{"region", cfg.Region, "eu"},
		// Keys without a variable keep the file's value.
		{"http.write_timeout", cfg.HTTP.WriteTimeout, 30 * time.Second},
		{"kafka.client_id", cfg.Kafka.ClientID, "collector"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
	if _, err := cfg.Kafka.Opts(); err != nil {
		t.Errorf("Kafka.Opts: %v", err)
	}
}

func TestEnvOverrideInvalid(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("COLLECTOR_HTTP_PRODUCE_TIMEOUT", "60s")
	_, err := load(t, "../../configs/collector.yaml")
	if got := configtest.FieldKeys(err); !slices.Equal(got, []string{"http.produce_timeout"}) {
		t.Errorf("Load with COLLECTOR_HTTP_PRODUCE_TIMEOUT=60s = %v, want http.produce_timeout named", err)
	}
}

func TestWriteKeyFile(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("write-key-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadYAML(t, fmt.Sprintf("sources:\n  - name: app\n    write_key_file: %s\n", keyFile))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := cfg.Sources[0].WriteKey.Reveal(); got != "write-key-from-file" {
		t.Errorf("write key = %q, want the file's write-key-from-file without the newline", got)
	}

	// A short key in the file is as invalid as a short inline key.
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadYAML(t, fmt.Sprintf("sources:\n  - name: app\n    write_key_file: %s\n", short))
	if got := configtest.FieldKeys(err); !slices.Equal(got, []string{"sources[0].write_key"}) {
		t.Errorf("short key file: %v, want sources[0].write_key named", err)
	}
}

func TestDuplicateSourceName(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	_, err := loadYAML(t, `
sources:
  - name: web
    write_key: web-write-key-1
  - name: app
    write_key: app-write-key-1
  - name: web
    write_key: web-write-key-2
`)
	if got := configtest.FieldKeys(err); !slices.Equal(got, []string{"sources[2].name"}) {
		t.Fatalf("Load = %v, want sources[2].name named", err)
	}
	if !strings.Contains(err.Error(), `duplicate source name "web"`) {
		t.Errorf("error %q does not say which name is duplicated", err)
	}
}

// TestSecretsNotPrinted checks that a loaded config can be logged whole.
func TestSecretsNotPrinted(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	cfg := configtest.MustLoad(t, load, "testdata/good/all-keys.yaml")
	configtest.CheckSecretsHidden(t, cfg, "kafka-test-password", "web-write-key-0001", "file-write-key-0123456789", "legacy-write-key-01",
		strings.Repeat("a", 63)+"1", strings.Repeat("b", 63)+"2")
}

// TestDuplicateWriteKey documents a gap: two sources may share a write key.
// authenticate then attributes every request to the last of them (and a
// disabled source can shadow an enabled one), so validation should refuse it.
func TestDuplicateWriteKey(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	_, err := loadYAML(t, `
sources:
  - name: web
    write_key: shared-write-key
  - name: app
    write_key: shared-write-key
    enabled: false
`)
	if err == nil || !strings.Contains(err.Error(), "sources[1].write_key") {
		t.Errorf("Load = %v, want sources[1].write_key named as a duplicate", err)
	}
}
