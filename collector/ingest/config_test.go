package ingest_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/kafkax"
)

const envPrefix = "COLLECTOR"

// clearEnv hides any COLLECTOR_* variable of the developer's shell from the
// test (viper treats an empty variable as unset).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, envPrefix+"_") {
			t.Setenv(k, "")
		}
	}
}

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

// fieldKeys lists the keys of every config.FieldError in err's tree.
func fieldKeys(err error) []string {
	var keys []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if fe, ok := e.(*config.FieldError); ok {
			keys = append(keys, fe.Key)
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	slices.Sort(keys)
	return keys
}

// zeroLeaves lists the dotted mapstructure keys of zero-valued leaves in v,
// not descending into slices.
func zeroLeaves(v reflect.Value, prefix string) []string {
	var zero []string
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := f.Tag.Get("mapstructure")
		if name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "time" {
			zero = append(zero, zeroLeaves(fv, prefix+name+".")...)
			continue
		}
		if fv.IsZero() || (fv.Kind() == reflect.Slice && fv.Len() == 0) {
			zero = append(zero, prefix+name)
		}
	}
	return zero
}

func TestGoodConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good configs: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			clearEnv(t)
			cfg, err := load(t, path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			// The TLS files and SASL settings must also build a client.
			if _, err := cfg.Kafka.Opts(); err != nil {
				t.Errorf("Kafka.Opts: %v", err)
			}
		})
	}
}

func TestAllKeys(t *testing.T) {
	clearEnv(t)
	cfg, err := load(t, "testdata/good/all-keys.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := ingest.Config{
		Region: "eu",
		Log:    config.Log{Level: "debug", Format: "text"},
		Admin:  config.Admin{Listen: "127.0.0.1:9201"},
		HTTP: ingest.HTTP{
			Listen:            "127.0.0.1:8181",
			ReadHeaderTimeout: 2 * time.Second,
			ReadTimeout:       20 * time.Second,
			WriteTimeout:      25 * time.Second,
			IdleTimeout:       90 * time.Second,
			MaxRequestBytes:   1 << 20,
			MaxEventBytes:     64 << 10,
			ProduceTimeout:    4 * time.Second,
		},
		Kafka: kafkax.Config{
			Brokers:     []string{"k1.test:9093", "k2.test:9093"},
			ClientID:    "collector-eu",
			DialTimeout: 7 * time.Second,
			TLS: config.TLS{
				Enabled:            true,
				CAFile:             "../../internal/config/testdata/tls/ca.pem",
				CertFile:           "../../internal/config/testdata/tls/client.pem",
				KeyFile:            "../../internal/config/testdata/tls/client-key.pem",
				ServerName:         "kafka.test",
				InsecureSkipVerify: true,
			},
			SASL: kafkax.SASL{
				Mechanism:    "SCRAM-SHA-512",
				Username:     "collector",
				Password:     "kafka-test-password",
				PasswordFile: "testdata/secrets/kafka-password",
			},
		},
		Topics: ingest.Topics{Raw: kafkax.TopicSpec{
			Name: "events.raw.eu", Partitions: 6, ReplicationFactor: 3, CleanupPolicy: "delete", Retention: 12 * time.Hour,
		}},
		Sources: []ingest.Source{
			{Name: "web", WriteKey: "web-write-key-0001"},
			{Name: "ios", WriteKey: "file-write-key-0123456789", WriteKeyFile: "testdata/secrets/write-key"},
			{Name: "legacy", WriteKey: "legacy-write-key-01", Disabled: true},
		},
		TrustedProxies: []string{"10.0.0.0/8", "fd00::/8"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load(all-keys.yaml):\n got %#v\nwant %#v", cfg, want)
		// %#v redacts secrets; show them where they differ.
		if cfg.Kafka.SASL.Password != want.Kafka.SASL.Password {
			t.Errorf("kafka.sasl.password = %q", cfg.Kafka.SASL.Password.Reveal())
		}
	}
	// all-keys.yaml must keep setting every key as keys are added.
	if zero := zeroLeaves(reflect.ValueOf(cfg), ""); len(zero) > 0 {
		t.Errorf("all-keys.yaml leaves these keys unset: %q", zero)
	}
}

// badConfigs maps each file in testdata/bad to the error it must produce:
// keys are the exact FieldError keys (validation), msg a substring of the
// error (decoding), so every bad file proves the error names the key.
var badConfigs = map[string]struct {
	keys []string
	msg  string
}{
	"http-produce-timeout-not-shorter.yaml":  {keys: []string{"http.produce_timeout"}},
	"http-produce-timeout-not-duration.yaml": {msg: "'http.produce_timeout' time: invalid duration"},
	"http-produce-timeout-under-1s.yaml":     {keys: []string{"http.produce_timeout"}, msg: "at least 1s"},
	"http-produce-timeout-bare-int.yaml":     {msg: "'http.produce_timeout' 5 has no unit"},
	"http-read-timeout-zero.yaml":            {keys: []string{"http.read_timeout"}},
	"http-idle-timeout-negative.yaml":        {keys: []string{"http.idle_timeout"}},
	"http-listen-no-port.yaml":               {keys: []string{"http.listen"}},
	"http-max-event-over-request.yaml":       {keys: []string{"http.max_event_bytes"}},
	"http-max-request-bytes-negative.yaml":   {keys: []string{"http.max_event_bytes", "http.max_request_bytes"}},
	"http-max-request-bytes-not-int.yaml":    {msg: "'http.max_request_bytes' cannot parse"},
	"sources-empty.yaml":                     {keys: []string{"sources"}},
	"sources-missing.yaml":                   {keys: []string{"sources"}},
	"source-write-key-short.yaml":            {keys: []string{"sources[0].write_key"}},
	"source-write-key-missing.yaml":          {keys: []string{"sources[0].write_key"}},
	"source-name-missing.yaml":               {keys: []string{"sources[0].name"}},
	"source-name-duplicate.yaml":             {keys: []string{"sources[1].name"}},
	"source-write-key-and-file.yaml":         {keys: []string{"sources[0].write_key"}},
	"source-write-key-file-missing.yaml":     {keys: []string{"sources[0].write_key_file"}},
	"source-unknown-key.yaml":                {msg: "'sources[0]' has invalid keys: writekey"},
	"kafka-brokers-empty.yaml":               {keys: []string{"kafka.brokers"}},
	"kafka-broker-no-port.yaml":              {keys: []string{"kafka.brokers[0]"}},
	"kafka-dial-timeout-negative.yaml":       {keys: []string{"kafka.dial_timeout"}},
	"kafka-sasl-mechanism.yaml":              {keys: []string{"kafka.sasl.mechanism"}},
	"kafka-sasl-username-missing.yaml":       {keys: []string{"kafka.sasl.username"}},
	"kafka-sasl-password-missing.yaml":       {keys: []string{"kafka.sasl.password"}},
	"kafka-sasl-password-and-file.yaml":      {keys: []string{"kafka.sasl.password"}},
	"kafka-sasl-password-file-missing.yaml":  {keys: []string{"kafka.sasl.password_file"}},
	"kafka-sasl-unknown-key.yaml":            {msg: "'kafka.sasl' has invalid keys: passwd"},
	"kafka-tls-ca-missing.yaml":              {keys: []string{"kafka.tls.ca_file"}},
	"kafka-tls-cert-without-key.yaml":        {keys: []string{"kafka.tls.cert_file"}},
	"topics-raw-cleanup-policy.yaml":         {keys: []string{"topics.raw.cleanup_policy"}},
	"topics-raw-name-empty.yaml":             {keys: []string{"topics.raw.name"}},
	"topics-raw-partitions-negative.yaml":    {keys: []string{"topics.raw.partitions"}},
	"topics-raw-retention-not-duration.yaml": {msg: "'topics.raw.retention' time: invalid duration"},
	"region-empty.yaml":                      {keys: []string{"region"}},
	"log-level.yaml":                         {keys: []string{"log.level"}},
	"log-format.yaml":                        {keys: []string{"log.format"}},
	"admin-listen.yaml":                      {keys: []string{"admin.listen"}},
	"trusted-proxy-not-cidr.yaml":            {keys: []string{"trusted_proxies[1]"}},
	"unknown-key.yaml":                       {msg: "has invalid keys: regoin"},
	"unknown-nested-key.yaml":                {msg: "'http' has invalid keys: listen_addr"},
}

func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			want, ok := badConfigs[name]
			if !ok {
				t.Fatalf("%s has no entry in badConfigs", name)
			}
			clearEnv(t)
			_, err := load(t, path)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			if want.keys != nil {
				if got := fieldKeys(err); !slices.Equal(got, want.keys) {
					t.Errorf("error names keys %q, want exactly %q; error: %v", got, want.keys, err)
				}
				for _, k := range want.keys {
					if !strings.Contains(msg, k+": ") {
						t.Errorf("error %q does not name %s", msg, k)
					}
				}
			}
			if want.msg != "" && !strings.Contains(msg, want.msg) {
				t.Errorf("error %q does not contain %q", msg, want.msg)
			}
		})
	}
	for name := range badConfigs {
		if !seen[name] {
			t.Errorf("badConfigs lists %s, which is not in testdata/bad", name)
		}
	}
}

func TestShippedConfig(t *testing.T) {
	clearEnv(t)
	cfg, err := load(t, "../../configs/collector.yaml")
	if err != nil {
		t.Fatalf("Load(configs/collector.yaml): %v", err)
	}
	def := ingest.Default()
	if cfg.Region != "cn" || cfg.Admin != def.Admin || cfg.HTTP != def.HTTP {
		t.Errorf("shipped region/admin/http = %q %+v %+v, want the defaults %+v %+v", cfg.Region, cfg.Admin, cfg.HTTP, def.Admin, def.HTTP)
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{"127.0.0.1:9092"}) || cfg.Kafka.SASL.Mechanism != "" || cfg.Kafka.TLS.Enabled {
		t.Errorf("shipped kafka = %+v", cfg.Kafka)
	}
	if cfg.Topics.Raw.Name != "events.raw.cn" || cfg.Topics.Raw.Retention != 6*time.Hour {
		t.Errorf("shipped topics.raw = %+v", cfg.Topics.Raw)
	}
	if len(cfg.Sources) != 1 || cfg.Sources[0].Name != "demo" || cfg.Sources[0].WriteKey.Reveal() != "demo-write-key" {
		t.Errorf("shipped sources = %+v", cfg.Sources)
	}
	if len(cfg.TrustedProxies) != 0 {
		t.Errorf("shipped trusted_proxies = %q, want none", cfg.TrustedProxies)
	}
}

func TestDefaultNeedsOnlySources(t *testing.T) {
	cfg := ingest.Default()
	if err := cfg.Validate(); !slices.Equal(fieldKeys(err), []string{"sources"}) {
		t.Errorf("Default().Validate() = %v, want only sources missing", err)
	}
	cfg.Sources = []ingest.Source{{Name: "s", WriteKey: "12345678"}}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Default() with a source: %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	clearEnv(t)
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
	cfg, err := load(t, "../../configs/collector.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
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
	clearEnv(t)
	t.Setenv("COLLECTOR_HTTP_PRODUCE_TIMEOUT", "60s")
	_, err := load(t, "../../configs/collector.yaml")
	if got := fieldKeys(err); !slices.Equal(got, []string{"http.produce_timeout"}) {
		t.Errorf("Load with COLLECTOR_HTTP_PRODUCE_TIMEOUT=60s = %v, want http.produce_timeout named", err)
	}
}

func TestWriteKeyFile(t *testing.T) {
	clearEnv(t)
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
	if got := fieldKeys(err); !slices.Equal(got, []string{"sources[0].write_key"}) {
		t.Errorf("short key file: %v, want sources[0].write_key named", err)
	}
}

func TestDuplicateSourceName(t *testing.T) {
	clearEnv(t)
	_, err := loadYAML(t, `
sources:
  - name: web
    write_key: web-write-key-1
  - name: app
    write_key: app-write-key-1
  - name: web
    write_key: web-write-key-2
`)
	if got := fieldKeys(err); !slices.Equal(got, []string{"sources[2].name"}) {
		t.Fatalf("Load = %v, want sources[2].name named", err)
	}
	if !strings.Contains(err.Error(), `duplicate source name "web"`) {
		t.Errorf("error %q does not say which name is duplicated", err)
	}
}

// TestSecretsNotPrinted checks that a loaded config can be logged whole.
func TestSecretsNotPrinted(t *testing.T) {
	clearEnv(t)
	cfg, err := load(t, "testdata/good/all-keys.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(&cfg), string(b),
	}
	for _, out := range outputs {
		for _, secret := range []string{"kafka-test-password", "web-write-key-0001", "file-write-key-0123456789", "legacy-write-key-01"} {
			if strings.Contains(out, secret) {
				t.Errorf("output reveals %q: %s", secret, out)
			}
		}
	}
}

// TestDuplicateWriteKey documents a gap: two sources may share a write key.
// authenticate then attributes every request to the last of them (and a
// disabled source can shadow an enabled one), so validation should refuse it.
func TestDuplicateWriteKey(t *testing.T) {
	clearEnv(t)
	_, err := loadYAML(t, `
sources:
  - name: web
    write_key: shared-write-key
  - name: app
    write_key: shared-write-key
    disabled: true
`)
	if err == nil || !strings.Contains(err.Error(), "sources[1].write_key") {
		t.Errorf("Load = %v, want sources[1].write_key named as a duplicate", err)
	}
}
