package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/config/configtest"
)

// devConfig is a service config in miniature: a dev_mode key, an inline
// secret with a *_file twin, a list of structs holding secrets, a map of
// them, and a file-only secret (mapstructure:"-") as the collector's
// operators have.
type devConfig struct {
	DevMode   bool                 `mapstructure:"dev_mode"`
	Token     config.Secret        `mapstructure:"token"`
	TokenFile string               `mapstructure:"token_file"`
	Sources   []devSource          `mapstructure:"sources"`
	Peers     map[string]devSource `mapstructure:"peers"`
	Operator  devOperator          `mapstructure:"operator"`
	Kafka     devKafka             `mapstructure:"kafka"`
}

type devKafka struct {
	TLS config.TLS `mapstructure:"tls"`
}

type devSource struct {
	WriteKey config.Secret `mapstructure:"write_key"`
}

type devOperator struct {
	TokenFile string        `mapstructure:"token_file"`
	Token     config.Secret `mapstructure:"-"`
}

func (c *devConfig) Validate() error { return nil }

func (c *devConfig) Resolve() error {
	tok, err := config.ResolveSecret("token", c.Token, c.TokenFile)
	c.Token = tok
	errs := []error{err}
	if c.Operator.TokenFile != "" {
		c.Operator.Token, err = config.ResolveSecret("operator.token", "", c.Operator.TokenFile)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

const devPrefix = "DEVTEST"

// The repository's development files, seen from this package.
const (
	devOperatorToken = "../../configs/dev-operator.token"
	devPseudonymKey  = "../../configs/dev-pseudonym.key"
)

func loadDev(t *testing.T, yaml string) (devConfig, error) {
	t.Helper()
	var cfg devConfig
	err := config.Load(writeFile(t, t.TempDir(), "dev.yaml", yaml), devPrefix, &cfg)
	return cfg, err
}

// shippedYAML holds a shipped secret at each kind of place, and a secret of
// its own beside them.
const shippedYAML = `
token_file: ` + devOperatorToken + `
sources:
  - write_key: my-own-write-key
  - write_key: demo-write-key
peers:
  b:
    write_key: demo-backend-write-key
operator:
  token_file: ` + devPseudonymKey + `
`

func TestLoadRefusesShippedSecrets(t *testing.T) {
	configtest.ClearEnv(t, devPrefix)
	_, err := loadDev(t, shippedYAML)
	want := []string{"operator.token_file", "peers.b.write_key", "sources[1].write_key", "token_file"}
	if got := configtest.FieldKeys(err); !slices.Equal(got, want) {
		t.Fatalf("Load = %v, want exactly %q named", err, want)
	}
	msg := err.Error()
	for _, s := range []string{
		"sources[1].write_key: is the repository's demo write key (configs/collector.yaml); set a secret of your own, or dev_mode: true for a development setup",
		"token_file: holds the repository's development operator token (configs/dev-operator.token)",
		"operator.token_file: holds the repository's development pseudonym key",
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q lacks %q", msg, s)
		}
	}
	checkNoSecret(t, msg)
}

// TestLoadRefusesShippedSecretFromEnv: a shipped secret given by
// environment is refused like one in the file.
func TestLoadRefusesShippedSecretFromEnv(t *testing.T) {
	configtest.ClearEnv(t, devPrefix)
	t.Setenv("DEVTEST_TOKEN", "demo-write-key")
	_, err := loadDev(t, "sources: []\n")
	if got := configtest.FieldKeys(err); !slices.Equal(got, []string{"token"}) {
		t.Fatalf("Load = %v, want token named", err)
	}
	// A shipped secret padded with white space is the same secret.
	t.Setenv("DEVTEST_TOKEN", " demo-write-key\t")
	if _, err := loadDev(t, "sources: []\n"); !slices.Equal(configtest.FieldKeys(err), []string{"token"}) {
		t.Errorf("Load with the demo key padded = %v, want token named", err)
	}
}

// TestLoadRefusesInsecureTLS: certificate checks turned off are refused,
// with the key named, unless the config is a development setup.
func TestLoadRefusesInsecureTLS(t *testing.T) {
	configtest.ClearEnv(t, devPrefix)
	const insecure = "kafka:\n  tls:\n    enabled: true\n    insecure_skip_verify: true\n"
	_, err := loadDev(t, insecure)
	if got := configtest.FieldKeys(err); !slices.Equal(got, []string{"kafka.tls.insecure_skip_verify"}) {
		t.Fatalf("Load = %v, want kafka.tls.insecure_skip_verify named", err)
	}
	if !strings.Contains(err.Error(), "turns certificate checks off") || !strings.Contains(err.Error(), "dev_mode: true") {
		t.Errorf("error %q does not say why nor how to allow it", err)
	}
	if _, err := loadDev(t, "dev_mode: true\n"+insecure); err != nil {
		t.Errorf("Load with dev_mode: true: %v", err)
	}
	if _, err := loadDev(t, "kafka:\n  tls:\n    enabled: true\n"); err != nil {
		t.Errorf("Load with certificate checks on: %v", err)
	}
}

func TestLoadDevModeAcceptsShippedSecrets(t *testing.T) {
	configtest.ClearEnv(t, devPrefix)
	cfg, err := loadDev(t, "dev_mode: true\n"+shippedYAML)
	if err != nil {
		t.Fatalf("Load with dev_mode: true: %v", err)
	}
	if !config.DevMode(&cfg) {
		t.Error("DevMode = false with dev_mode: true")
	}
	// The environment switches it as it does every key.
	t.Setenv("DEVTEST_DEV_MODE", "true")
	if _, err := loadDev(t, shippedYAML); err != nil {
		t.Errorf("Load with DEVTEST_DEV_MODE=true: %v", err)
	}
	t.Setenv("DEVTEST_DEV_MODE", "false")
	if _, err := loadDev(t, "dev_mode: true\n"+shippedYAML); err == nil {
		t.Error("Load with DEVTEST_DEV_MODE=false over dev_mode: true succeeded")
	}
}

func TestLoadOwnSecretsNeedNoDevMode(t *testing.T) {
	configtest.ClearEnv(t, devPrefix)
	cfg, err := loadDev(t, "token: a-token-of-my-own\nsources:\n  - write_key: my-own-write-key\n")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if uses := config.ShippedIn(&cfg); len(uses) != 0 {
		t.Errorf("ShippedIn = %+v, want none", uses)
	}
}

// TestLoadShippedCheckAfterValidation: an invalid config gets its
// validation errors; the shipped secrets are checked once every secret is
// read.
func TestLoadShippedCheckAfterValidation(t *testing.T) {
	configtest.ClearEnv(t, devPrefix)
	_, err := loadDev(t, "token: demo-write-key\ntoken_file: "+devOperatorToken+"\n")
	if got := configtest.FieldKeys(err); !slices.Equal(got, []string{"token"}) || !strings.Contains(err.Error(), "not both") {
		t.Errorf("Load = %v, want only the validation error", err)
	}
}

func TestShippedIn(t *testing.T) {
	configtest.ClearEnv(t, devPrefix)
	cfg, err := loadDev(t, "dev_mode: true\n"+shippedYAML)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, u := range config.ShippedIn(&cfg) {
		keys = append(keys, u.Key)
		if u.FromFile != strings.HasSuffix(u.Key, "_file") {
			t.Errorf("%s: FromFile %v", u.Key, u.FromFile)
		}
	}
	if want := []string{"token_file", "sources[1].write_key", "peers.b.write_key", "operator.token_file"}; !slices.Equal(keys, want) {
		t.Errorf("ShippedIn keys = %q, want %q", keys, want)
	}
}

func TestWarnDevMode(t *testing.T) {
	configtest.ClearEnv(t, devPrefix)
	cfg, err := loadDev(t, "dev_mode: true\n"+shippedYAML)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	config.WarnDevMode(slog.New(slog.NewJSONHandler(&buf, nil)), &cfg)
	var rec struct {
		Level   string   `json:"level"`
		Msg     string   `json:"msg"`
		DevMode bool     `json:"dev_mode"`
		Keys    []string `json:"shipped_secrets_at"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON record, got %q: %v", buf.String(), err)
	}
	if rec.Level != "WARN" || !rec.DevMode || !strings.Contains(rec.Msg, "demo secrets") || !strings.Contains(rec.Msg, "must not run in production") {
		t.Errorf("record %+v: want a warning that it accepts the demo secrets and must not run in production", rec)
	}
	if want := []string{"token_file", "sources[1].write_key", "peers.b.write_key", "operator.token_file"}; !slices.Equal(rec.Keys, want) {
		t.Errorf("shipped_secrets_at = %q, want %q", rec.Keys, want)
	}
	checkNoSecret(t, buf.String())

	// Not in dev mode: nothing.
	buf.Reset()
	cfg.DevMode = false
	config.WarnDevMode(slog.New(slog.NewJSONHandler(&buf, nil)), &cfg)
	if buf.Len() != 0 {
		t.Errorf("WarnDevMode without dev mode logged %q", buf.String())
	}
}

// checkNoSecret fails if out shows any of the secrets shippedYAML holds.
func checkNoSecret(t *testing.T, out string) {
	t.Helper()
	secrets := []string{"demo-write-key", "demo-backend-write-key"}
	for _, f := range []string{devOperatorToken, devPseudonymKey} {
		b, err := os.ReadFile(filepath.Clean(f))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, strings.TrimSpace(string(b)))
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("output reveals a secret: %s", out)
		}
	}
}
