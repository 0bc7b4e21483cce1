package chwriter_test

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

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/sink/chwriter"
)

const envPrefix = "SINK"

// clearEnv hides any SINK_* variable of the developer's shell from the
// test (viper treats an empty variable as unset).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, envPrefix+"_") {
			t.Setenv(k, "")
		}
	}
}

func load(t *testing.T, path string) (chwriter.Config, error) {
	t.Helper()
	cfg := chwriter.Default()
	err := config.Load(path, envPrefix, &cfg)
	return cfg, err
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
			if _, err := cfg.Kafka.Opts(); err != nil {
				t.Errorf("Kafka.Opts: %v", err)
			}
			if _, err := cfg.ClickHouse.TLS.Build(); err != nil {
				t.Errorf("ClickHouse.TLS.Build: %v", err)
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
		Admin:  config.Admin{Listen: "127.0.0.1:9203"},
		Kafka: kafkax.Config{
			Brokers:     []string{"k1.test:9093"},
			ClientID:    "sink-eu",
			DialTimeout: 9 * time.Second,
			TLS:         kafkaTLS,
			SASL: kafkax.SASL{
				Mechanism:    "SCRAM-SHA-512",
				Username:     "sink",
				Password:     "kafka-test-password",
				PasswordFile: "testdata/secrets/kafka-password",
			},
		},
		GroupID: "sink-eu",
		Topics: chwriter.Topics{
			Clean: kafkax.TopicSpec{Name: "events.clean.eu", Partitions: 6, ReplicationFactor: 3, CleanupPolicy: "delete", Retention: 168 * time.Hour},
			DLQ:   kafkax.TopicSpec{Name: "events.dlq.eu", Partitions: 1, ReplicationFactor: 3, CleanupPolicy: "delete", Retention: 336 * time.Hour},
		},
		ClickHouse: chx.Config{
			Addr:         []string{"ch1.test:9440", "ch2.test:9440"},
			Username:     "sink",
			Password:     "clickhouse-test-password",
			PasswordFile: "testdata/secrets/clickhouse-password",
			TLS:          chTLS,
			DialTimeout:  4 * time.Second,
		},
		Database: "analytics_eu",
		Batch:    chwriter.Batch{MaxRows: 10000, MaxWait: 500 * time.Millisecond},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load(all-keys.yaml):\n got %#v\nwant %#v", cfg, want)
		if cfg.ClickHouse.Password != want.ClickHouse.Password || cfg.Kafka.SASL.Password != want.Kafka.SASL.Password {
			t.Errorf("secrets differ: clickhouse.password %q, kafka.sasl.password %q", cfg.ClickHouse.Password.Reveal(), cfg.Kafka.SASL.Password.Reveal())
		}
	}
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
	"database-hyphen.yaml":                  {keys: []string{"database"}},
	"database-leading-digit.yaml":           {keys: []string{"database"}},
	"database-empty.yaml":                   {keys: []string{"database"}},
	"database-injection.yaml":               {keys: []string{"database"}},
	"batch-max-rows-zero.yaml":              {keys: []string{"batch.max_rows"}},
	"batch-max-rows-negative.yaml":          {keys: []string{"batch.max_rows"}},
	"batch-max-rows-not-int.yaml":           {msg: "'batch.max_rows' cannot parse"},
	"batch-max-wait-zero.yaml":              {keys: []string{"batch.max_wait"}},
	"batch-max-wait-not-duration.yaml":      {msg: "'batch.max_wait' time: invalid duration"},
	"batch-unknown-key.yaml":                {msg: "'batch' has invalid keys: max_bytes"},
	"clickhouse-addr-empty.yaml":            {keys: []string{"clickhouse.addr"}},
	"clickhouse-password-and-file.yaml":     {keys: []string{"clickhouse.password"}},
	"clickhouse-password-file-missing.yaml": {keys: []string{"clickhouse.password_file"}},
	"clickhouse-tls-ca-missing.yaml":        {keys: []string{"clickhouse.tls.ca_file"}},
	"clickhouse-dial-timeout-negative.yaml": {keys: []string{"clickhouse.dial_timeout"}},
	"clickhouse-unknown-key.yaml":           {msg: "'clickhouse' has invalid keys: database"},
	"group-id-empty.yaml":                   {keys: []string{"group_id"}},
	"topics-clean-cleanup-policy.yaml":      {keys: []string{"topics.clean.cleanup_policy"}},
	"topics-dlq-name-empty.yaml":            {keys: []string{"topics.dlq.name"}},
	"topics-raw-unknown.yaml":               {msg: "'topics' has invalid keys: raw"},
	"kafka-sasl-username-missing.yaml":      {keys: []string{"kafka.sasl.username"}},
	"kafka-broker-no-port.yaml":             {keys: []string{"kafka.brokers[0]"}},
	"region-empty.yaml":                     {keys: []string{"region"}},
	"log-format.yaml":                       {keys: []string{"log.format"}},
	"admin-listen.yaml":                     {keys: []string{"admin.listen"}},
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
	cfg, err := load(t, "../../configs/sink.yaml")
	if err != nil {
		t.Fatalf("Load(configs/sink.yaml): %v", err)
	}
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

func TestDefaultIsValid(t *testing.T) {
	cfg := chwriter.Default()
	if err := cfg.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	clearEnv(t)
	t.Setenv("SINK_CLICKHOUSE_PASSWORD", "env-clickhouse-password")
	t.Setenv("SINK_CLICKHOUSE_ADDR", "ch1:9000,ch2:9000")
	t.Setenv("SINK_DATABASE", "analytics_eu")
	t.Setenv("SINK_BATCH_MAX_ROWS", "123")
	t.Setenv("SINK_BATCH_MAX_WAIT", "250ms")
	t.Setenv("SINK_KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("SINK_CLICKHOUSE_DIAL_TIMEOUT", "2s")
	cfg, err := load(t, "../../configs/sink.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"clickhouse.password", cfg.ClickHouse.Password.Reveal(), "env-clickhouse-password"},
		{"clickhouse.addr", cfg.ClickHouse.Addr, []string{"ch1:9000", "ch2:9000"}},
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
	clearEnv(t)
	t.Setenv("SINK_DATABASE", "analytics-eu")
	t.Setenv("SINK_BATCH_MAX_ROWS", "0")
	_, err := load(t, "../../configs/sink.yaml")
	if got, want := fieldKeys(err), []string{"batch.max_rows", "database"}; !slices.Equal(got, want) {
		t.Errorf("Load = %v, want keys %q named", err, want)
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
	for _, out := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(&cfg), string(b)} {
		for _, secret := range []string{"clickhouse-test-password", "kafka-test-password"} {
			if strings.Contains(out, secret) {
				t.Errorf("output reveals %q: %s", secret, out)
			}
		}
	}
}
