package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/config/configtest"
)

// envPrefix is the prefix of the test config's environment overrides.
const envPrefix = "CFGTEST"

// testConfig exercises what the service configs use: a nested section, a
// duration, a string list, and a Secret with its *_file twin.
type testConfig struct {
	Name      string        `mapstructure:"name"`
	Server    testServer    `mapstructure:"server"`
	Peers     []string      `mapstructure:"peers"`
	Token     config.Secret `mapstructure:"token"`
	TokenFile string        `mapstructure:"token_file"`
}

type testServer struct {
	Listen  string        `mapstructure:"listen"`
	Timeout time.Duration `mapstructure:"timeout"`
	Retries int           `mapstructure:"retries"`
}

func defaultTestConfig() testConfig {
	return testConfig{
		Name:   "default-name",
		Server: testServer{Listen: ":1000", Timeout: time.Second, Retries: 3},
	}
}

// Resolve reads the token file, like the service configs.
func (c *testConfig) Resolve() error {
	tok, err := config.ResolveSecret("token", c.Token, c.TokenFile)
	c.Token = tok
	return err
}

// Validate names the dotted key of every problem, like the service configs.
func (c *testConfig) Validate() error {
	errs := []error{config.ValidateListen("server.listen", c.Server.Listen)}
	if c.Server.Timeout <= 0 {
		errs = append(errs, config.Invalid("server.timeout", "must be positive, got %v", c.Server.Timeout))
	}
	if c.Server.Retries < 0 {
		errs = append(errs, config.Invalid("server.retries", "must not be negative"))
	}
	return errors.Join(errs...)
}

var (
	_ config.Validator = (*testConfig)(nil)
	_ config.Resolver  = (*testConfig)(nil)
)

// writeFile writes content into dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// load writes yaml to a temporary file and loads it over the defaults.
// Tests call configtest.ClearEnv before setting their own variables.
func load(t *testing.T, yaml string) (testConfig, error) {
	t.Helper()
	cfg := defaultTestConfig()
	err := config.Load(writeFile(t, t.TempDir(), "test.yaml", yaml), envPrefix, &cfg)
	return cfg, err
}

func TestLoadFileValues(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "file-token-value\n")
	cfg, err := load(t, `
name: from-file
server:
  listen: "127.0.0.1:2000"
  timeout: 1m30s
  retries: 7
peers: ["p1:1", "p2:2", "p3:3"]
token_file: `+tokenFile+`
`)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := testConfig{
		Name:      "from-file",
		Server:    testServer{Listen: "127.0.0.1:2000", Timeout: 90 * time.Second, Retries: 7},
		Peers:     []string{"p1:1", "p2:2", "p3:3"},
		Token:     "file-token-value",
		TokenFile: tokenFile,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load:\n got %#v\nwant %#v", cfg, want)
	}
	if got := cfg.Token.Reveal(); got != "file-token-value" {
		t.Errorf("token = %q, want the file's content without the newline", got)
	}
}

func TestLoadKeepsDefaultsForAbsentKeys(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	cfg, err := load(t, "name: only-name\n")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := defaultTestConfig()
	want.Name = "only-name"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load:\n got %#v\nwant %#v", cfg, want)
	}
}

func TestLoadEnvOverridesNestedKey(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("CFGTEST_SERVER_LISTEN", "10.0.0.1:3000")
	t.Setenv("CFGTEST_SERVER_TIMEOUT", "45s")
	t.Setenv("CFGTEST_SERVER_RETRIES", "9")
	t.Setenv("CFGTEST_NAME", "from-env")
	cfg, err := load(t, `
name: from-file
server:
  listen: "127.0.0.1:2000"
  timeout: 5s
  retries: 1
`)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Server.Listen != "10.0.0.1:3000" {
		t.Errorf("server.listen = %q, want the environment's 10.0.0.1:3000", cfg.Server.Listen)
	}
	if cfg.Server.Timeout != 45*time.Second {
		t.Errorf("server.timeout = %v, want the environment's 45s", cfg.Server.Timeout)
	}
	if cfg.Server.Retries != 9 {
		t.Errorf("server.retries = %d, want the environment's 9", cfg.Server.Retries)
	}
	if cfg.Name != "from-env" {
		t.Errorf("name = %q, want from-env", cfg.Name)
	}
}

func TestLoadEnvList(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("CFGTEST_PEERS", "a:1,b:2")
	cfg, err := load(t, `peers: ["x:9"]`+"\n")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := []string{"a:1", "b:2"}; !slices.Equal(cfg.Peers, want) {
		t.Errorf("peers = %q, want %q", cfg.Peers, want)
	}
}

func TestLoadEnvKeyAbsentFromFile(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("CFGTEST_SERVER_TIMEOUT", "42s")
	t.Setenv("CFGTEST_PEERS", "only:1")
	t.Setenv("CFGTEST_TOKEN", "env-token")
	// The file has no server section, no peers and no token at all.
	cfg, err := load(t, "name: n\n")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Server.Timeout != 42*time.Second {
		t.Errorf("server.timeout = %v, want 42s from the environment", cfg.Server.Timeout)
	}
	if cfg.Server.Listen != ":1000" {
		t.Errorf("server.listen = %q, want the default :1000 kept beside the env key", cfg.Server.Listen)
	}
	if !slices.Equal(cfg.Peers, []string{"only:1"}) {
		t.Errorf("peers = %q, want [only:1]", cfg.Peers)
	}
	if cfg.Token.Reveal() != "env-token" {
		t.Errorf("token = %q, want env-token", cfg.Token.Reveal())
	}
}

// TestLoadEmptyEnvOverridesFile documents a gap: an environment variable set
// to the empty string does not override the file, because viper treats it as
// unset. So COLLECTOR_KAFKA_SASL_MECHANISM= cannot turn SASL off, and
// ENRICHER_PSEUDONYM_KEY_FILE= cannot drop the shipped key_file to make room
// for ENRICHER_PSEUDONYM_KEY.
func TestLoadEmptyEnvOverridesFile(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("CFGTEST_NAME", "")
	cfg, err := load(t, "name: from-file\n")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Name != "" {
		t.Errorf("name = %q, want the empty value from CFGTEST_NAME", cfg.Name)
	}
}

func TestLoadEnvSecretAndFileConflict(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	tokenFile := writeFile(t, t.TempDir(), "token", "file-token")
	t.Setenv("CFGTEST_TOKEN", "env-token")
	_, err := load(t, "token_file: "+tokenFile+"\n")
	if err == nil {
		t.Fatal("Load accepted both token (env) and token_file")
	}
	if got := configtest.FieldKeys(err); !slices.Equal(got, []string{"token"}) {
		t.Errorf("field keys = %q, want [token]; err = %v", got, err)
	}
	for _, leak := range []string{"env-token", "file-token"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q reveals the secret %q", err, leak)
		}
	}
}

func TestLoadRejectsUnknownKeys(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"top level", "name: n\nbogus_key: 1\n", []string{"invalid keys", "bogus_key"}},
		{"nested", "server:\n  listen: ':1'\n  listen_addr: ':2'\n", []string{"server", "invalid keys", "listen_addr"}},
		{"misspelt secret file", "token_flie: /tmp/x\n", []string{"invalid keys", "token_flie"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yaml)
			if err == nil {
				t.Fatal("Load accepted an unknown key")
			}
			t.Logf("error: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadBadValueNamesKey(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"duration", "server:\n  timeout: soon\n", "server.timeout"},
		{"int", "server:\n  retries: many\n", "server.retries"},
		{"yaml syntax", "server: [unclosed\n", "test.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yaml)
			if err == nil {
				t.Fatal("Load accepted a malformed value")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	path := filepath.Join(t.TempDir(), "does-not-exist.yaml")
	cfg := defaultTestConfig()
	err := config.Load(path, envPrefix, &cfg)
	if err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path %s", err, path)
	}
}

func TestLoadValidateErrorNamesKey(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	_, err := load(t, "server:\n  listen: ':1'\n  timeout: -1s\n  retries: -2\n")
	if err == nil {
		t.Fatal("Load accepted an invalid config")
	}
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v holds no *config.FieldError", err)
	}
	if got, want := configtest.FieldKeys(err), []string{"server.retries", "server.timeout"}; !slices.Equal(got, want) {
		t.Errorf("field keys = %q, want %q (every problem, each naming its key)", got, want)
	}
	for _, w := range []string{"server.timeout: must be positive", "server.retries: must not be negative", "test.yaml"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestFieldError(t *testing.T) {
	err := config.Invalid("a.b[2].c", "bad %s %d", "thing", 3)
	if got, want := err.Error(), "a.b[2].c: bad thing 3"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	joined := errors.Join(nil, err, nil)
	var fe *config.FieldError
	if !errors.As(joined, &fe) || fe.Key != "a.b[2].c" {
		t.Errorf("errors.As(Join(...)) = %v, %+v", errors.As(joined, &fe), fe)
	}
}

// secretHolder is a config section holding a secret, as services log them.
type secretHolder struct {
	User     string        `json:"user"`
	Password config.Secret `json:"password"`
	Nested   struct {
		Keys []config.Secret `json:"keys"`
	} `json:"nested"`
	Ptr *config.Secret `json:"ptr"`
}

const secretValue = "hunter2-very-secret"

func newSecretHolder() secretHolder {
	h := secretHolder{User: "alice", Password: secretValue}
	h.Nested.Keys = []config.Secret{secretValue, secretValue + "-2"}
	p := config.Secret(secretValue + "-ptr")
	h.Ptr = &p
	return h
}

func TestSecretFmt(t *testing.T) {
	h := newSecretHolder()
	s := config.Secret(secretValue)
	for _, tc := range []struct {
		format string
		arg    any
	}{
		{"%v", h}, {"%+v", h}, {"%#v", h}, {"%s", h},
		{"%v", &h}, {"%+v", &h}, {"%#v", &h}, {"%s", &h},
		{"%v", s}, {"%+v", s}, {"%#v", s}, {"%s", s}, {"%q", s}, {"%x", s}, {"%X", s},
		{"%v", &s}, {"%s", []config.Secret{s}}, {"%v", map[string]config.Secret{"k": s}},
	} {
		got := fmt.Sprintf(tc.format, tc.arg)
		lower := strings.ToLower(got)
		if strings.Contains(got, secretValue) || strings.Contains(lower, fmt.Sprintf("%x", secretValue)) {
			t.Errorf("Sprintf(%q, %T) = %q reveals the secret", tc.format, tc.arg, got)
		}
		if !strings.Contains(got, "[redacted]") && !strings.Contains(lower, fmt.Sprintf("%x", "[redacted]")) {
			t.Errorf("Sprintf(%q, %T) = %q does not say [redacted]", tc.format, tc.arg, got)
		}
	}
	if got := fmt.Sprint(h); strings.Contains(got, secretValue) {
		t.Errorf("Sprint = %q reveals the secret", got)
	}
	if got := fmt.Sprintln(s, h); strings.Contains(got, secretValue) {
		t.Errorf("Sprintln = %q reveals the secret", got)
	}
	// An error wrapping a config with %v must not reveal it either.
	if got := fmt.Errorf("bad config %+v", h).Error(); strings.Contains(got, secretValue) {
		t.Errorf("Errorf = %q reveals the secret", got)
	}
}

func TestSecretEmptyPrintsEmpty(t *testing.T) {
	var s config.Secret
	if s.String() != "" || s.GoString() != "" {
		t.Errorf("empty secret prints %q / %q, want empty (so an unset secret is visible as unset)", s.String(), s.GoString())
	}
	if b, _ := json.Marshal(s); string(b) != `""` {
		t.Errorf("json.Marshal(empty) = %s, want \"\"", b)
	}
}

func TestSecretReveal(t *testing.T) {
	if got := config.Secret(secretValue).Reveal(); got != secretValue {
		t.Errorf("Reveal = %q, want %q", got, secretValue)
	}
}

func TestSecretSlog(t *testing.T) {
	h := newSecretHolder()
	s := config.Secret(secretValue)
	for _, name := range []string{"json", "text"} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			var handler slog.Handler
			if name == "json" {
				handler = slog.NewJSONHandler(&buf, nil)
			} else {
				handler = slog.NewTextHandler(&buf, nil)
			}
			log := slog.New(handler)
			log.Info("secret", "password", s)
			log.Info("pointer", "password", &s)
			log.Info("struct", "cfg", h)
			log.Info("struct pointer", slog.Any("cfg", &h))
			log.Info("group", slog.Group("kafka", slog.Any("password", s)))
			log.With("password", s).Info("with")
			out := buf.String()
			if strings.Contains(out, secretValue) {
				t.Errorf("%s log reveals the secret:\n%s", name, out)
			}
			if got := strings.Count(out, "[redacted]"); got < 6 {
				t.Errorf("%s log says [redacted] %d times, want at least 6:\n%s", name, got, out)
			}
		})
	}
	// The JSON handler's output stays valid JSON with the redacted value.
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "password", s)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("JSON log line %q: %v", buf.String(), err)
	}
	if rec["password"] != "[redacted]" {
		t.Errorf("password logged as %v, want [redacted]", rec["password"])
	}
}

func TestSecretMarshal(t *testing.T) {
	h := newSecretHolder()
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if strings.Contains(string(b), secretValue) {
		t.Errorf("json.Marshal = %s reveals the secret", b)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["password"] != "[redacted]" || back["ptr"] != "[redacted]" {
		t.Errorf("json.Marshal = %s, want password and ptr [redacted]", b)
	}
	s := config.Secret(secretValue)
	if b, err := json.Marshal(s); err != nil || string(b) != `"[redacted]"` {
		t.Errorf("json.Marshal(secret) = %s, %v; want \"[redacted]\"", b, err)
	}
	if b, err := s.MarshalText(); err != nil || string(b) != "[redacted]" {
		t.Errorf("MarshalText = %q, %v; want [redacted]", b, err)
	}
}

func TestResolveSecret(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"newline", "from-file\n", "from-file"},
		{"crlf", "from-file\r\n", "from-file"},
		{"several newlines", "from-file\n\n", "from-file"},
		{"none", "from-file", "from-file"},
		{"inner spaces kept", " a b ", " a b "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_"), tc.content)
			got, err := config.ResolveSecret("kafka.sasl.password", "", p)
			if err != nil {
				t.Fatalf("ResolveSecret: %v", err)
			}
			if got.Reveal() != tc.want {
				t.Errorf("ResolveSecret = %q, want %q", got.Reveal(), tc.want)
			}
		})
	}

	t.Run("inline value", func(t *testing.T) {
		got, err := config.ResolveSecret("k", "inline", "")
		if err != nil || got.Reveal() != "inline" {
			t.Errorf("ResolveSecret = %q, %v; want inline", got.Reveal(), err)
		}
	})
	t.Run("neither", func(t *testing.T) {
		got, err := config.ResolveSecret("k", "", "")
		if err != nil || got != "" {
			t.Errorf("ResolveSecret = %q, %v; want empty, nil", got.Reveal(), err)
		}
	})
	t.Run("both", func(t *testing.T) {
		p := writeFile(t, dir, "both", "file-value")
		got, err := config.ResolveSecret("kafka.sasl.password", "inline-value", p)
		if err == nil {
			t.Fatal("ResolveSecret accepted both a value and a file")
		}
		if got != "" {
			t.Errorf("ResolveSecret returned %q with its error", got.Reveal())
		}
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Key != "kafka.sasl.password" {
			t.Errorf("error %v: want a FieldError for kafka.sasl.password", err)
		}
		if !strings.Contains(err.Error(), "kafka.sasl.password_file") {
			t.Errorf("error %q does not mention the _file key", err)
		}
		for _, leak := range []string{"inline-value", "file-value"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("error %q reveals %q", err, leak)
			}
		}
	})
	t.Run("unreadable file", func(t *testing.T) {
		missing := filepath.Join(dir, "missing")
		_, err := config.ResolveSecret("pseudonym.key", "", missing)
		if err == nil {
			t.Fatal("ResolveSecret of a missing file succeeded")
		}
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Key != "pseudonym.key_file" {
			t.Errorf("error %v: want a FieldError for pseudonym.key_file", err)
		}
		if !strings.Contains(err.Error(), "pseudonym.key_file") || !strings.Contains(err.Error(), missing) {
			t.Errorf("error %q names neither key_file nor the path", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		_, err := config.ResolveSecret("token", "", dir)
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Key != "token_file" {
			t.Errorf("ResolveSecret(dir) error %v: want a FieldError for token_file", err)
		}
	})
}

func TestLogValidate(t *testing.T) {
	for _, tc := range []struct {
		log  config.Log
		keys []string
	}{
		{config.Log{}, nil},
		{config.Log{Level: "debug", Format: "text"}, nil},
		{config.Log{Level: "WARN", Format: "JSON"}, nil},
		{config.Log{Level: "error"}, nil},
		{config.Log{Level: "verbose"}, []string{"log.level"}},
		{config.Log{Format: "xml"}, []string{"log.format"}},
		{config.Log{Level: "loud", Format: "xml"}, []string{"log.format", "log.level"}},
	} {
		if got := configtest.FieldKeys(tc.log.Validate("log")); !slices.Equal(got, tc.keys) {
			t.Errorf("%+v.Validate = %q, want %q", tc.log, got, tc.keys)
		}
	}
	if lvl, err := (config.Log{Level: "warn"}).SlogLevel(); err != nil || lvl != slog.LevelWarn {
		t.Errorf("SlogLevel(warn) = %v, %v", lvl, err)
	}
	if lvl, err := (config.Log{}).SlogLevel(); err != nil || lvl != slog.LevelInfo {
		t.Errorf("SlogLevel(empty) = %v, %v; want info", lvl, err)
	}
}

func TestValidateListen(t *testing.T) {
	for addr, ok := range map[string]bool{
		":9101":          true,
		"127.0.0.1:8080": true,
		"[::1]:8080":     true,
		"":               false,
		"8080":           false,
		"host":           false,
	} {
		err := config.ValidateListen("admin.listen", addr)
		if (err == nil) != ok {
			t.Errorf("ValidateListen(%q) = %v, want ok=%v", addr, err, ok)
		}
		if err != nil && !slices.Equal(configtest.FieldKeys(err), []string{"admin.listen"}) {
			t.Errorf("ValidateListen(%q) = %v, want a FieldError for admin.listen", addr, err)
		}
	}
	if err := (config.Admin{Listen: "nope"}).Validate("admin"); !slices.Equal(configtest.FieldKeys(err), []string{"admin.listen"}) {
		t.Errorf("Admin.Validate = %v, want admin.listen", err)
	}
}

// TestResolveSecretTwice: a secret read from its file resolves to itself
// again (a config validated twice), and one given both inline and by a
// file that differ is refused, naming the key.
func TestResolveSecretTwice(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("the-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	first, err := config.ResolveSecret("k.key", "", file)
	if err != nil || first.Reveal() != "the-secret-0123456789" {
		t.Fatalf("first: %q, %v", first.Reveal(), err)
	}
	if again, err := config.ResolveSecret("k.key", first, file); err != nil || again != first {
		t.Errorf("again: %q, %v; want the same secret", again.Reveal(), err)
	}
	if _, err := config.ResolveSecret("k.key", "another", file); err == nil || !strings.Contains(err.Error(), "k.key: set either") {
		t.Errorf("inline and file differ: %v, want refused naming k.key", err)
	}
}

// stepConfig records the order of Load's steps.
type stepConfig struct {
	Fail  string `mapstructure:"fail"`
	Steps []string
}

func (c *stepConfig) Resolve() error {
	c.Steps = append(c.Steps, "resolve")
	if c.Fail == "resolve" {
		return config.Invalid("fail", "resolve failed")
	}
	return nil
}

func (c *stepConfig) Validate() error {
	c.Steps = append(c.Steps, "validate")
	if c.Fail != "" {
		return config.Invalid("fail", "%s", c.Fail)
	}
	return nil
}

// TestLoadResolvesThenValidates: Load resolves once, before Validate, and
// a config that could not be resolved is not validated (its missing
// secret would be reported twice).
func TestLoadResolvesThenValidates(t *testing.T) {
	configtest.ClearEnv(t, "STEPTEST")
	for yaml, want := range map[string][]string{
		"fail: \"\"\n":    {"resolve", "validate"},
		"fail: invalid\n": {"resolve", "validate"},
		"fail: resolve\n": {"resolve"},
	} {
		var cfg stepConfig
		err := config.Load(writeFile(t, t.TempDir(), "steps.yaml", yaml), "STEPTEST", &cfg)
		if !slices.Equal(cfg.Steps, want) {
			t.Errorf("%q: steps %q, want %q", yaml, cfg.Steps, want)
		}
		if (err != nil) != (cfg.Fail != "") || (err != nil && !slices.Equal(configtest.FieldKeys(err), []string{"fail"})) {
			t.Errorf("%q: Load = %v", yaml, err)
		}
	}
}
