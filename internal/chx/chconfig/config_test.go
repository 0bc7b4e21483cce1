package chconfig_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/chx/chconfig"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/config/configtest"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte("ch-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	addr := []string{"127.0.0.1:9000"}
	for _, tc := range []struct {
		name string
		cfg  chconfig.Config
		keys []string
	}{
		{"minimal", chconfig.Config{Addr: addr}, nil},
		{"password", chconfig.Config{Addr: addr, Username: "u", Password: "p", DialTimeout: time.Second}, nil},
		{"password file", chconfig.Config{Addr: addr, PasswordFile: pwFile}, nil},
		{"no addr", chconfig.Config{}, []string{"clickhouse.addr"}},
		{"negative dial timeout", chconfig.Config{Addr: addr, DialTimeout: -time.Second}, []string{"clickhouse.dial_timeout"}},
		{"password and file", chconfig.Config{Addr: addr, Password: "p", PasswordFile: pwFile}, []string{"clickhouse.password"}},
		{"missing password file", chconfig.Config{Addr: addr, PasswordFile: missing}, []string{"clickhouse.password_file"}},
		{"tls missing ca", chconfig.Config{Addr: addr, TLS: config.TLS{Enabled: true, CAFile: missing}}, []string{"clickhouse.tls.ca_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(&tc.cfg)
			if got := configtest.FieldKeys(err); !slices.Equal(got, tc.keys) {
				t.Errorf("Validate = %v (keys %q), want keys %q", err, got, tc.keys)
			}
		})
	}

	c := chconfig.Config{Addr: addr, PasswordFile: pwFile}
	if err := c.Resolve("clickhouse"); err != nil {
		t.Fatal(err)
	}
	if c.Password.Reveal() != "ch-secret" {
		t.Errorf("password = %q, want ch-secret from the file", c.Password.Reveal())
	}
}

// check resolves c and then validates it, as config.Check does a service's
// config.
func check(c *chconfig.Config) error {
	if err := c.Resolve("clickhouse"); err != nil {
		return err
	}
	return c.Validate("clickhouse")
}

func TestValidateIdentifier(t *testing.T) {
	for name, ok := range map[string]bool{
		"analytics_cn": true,
		"_x":           true,
		"A1":           true,
		"":             false,
		"1abc":         false,
		"analytics-cn": false,
		"a.b":          false,
		"a; DROP":      false,
		"`a`":          false,
	} {
		err := chconfig.ValidateIdentifier("database", name)
		if (err == nil) != ok {
			t.Errorf("ValidateIdentifier(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && !slices.Equal(configtest.FieldKeys(err), []string{"database"}) {
			t.Errorf("ValidateIdentifier(%q) = %v, want a FieldError for database", name, err)
		}
	}
}
