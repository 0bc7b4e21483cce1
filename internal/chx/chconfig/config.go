// Package chconfig is how a service reaches ClickHouse, as config, without
// the driver: a config that only names a database (the collector's, for
// its privacy API) does not pull clickhouse-go into its package. chx opens
// the connections.
package chconfig

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/consentflow/consentflow/internal/config"
)

// Config is how a service reaches ClickHouse.
type Config struct {
	// Addr lists native-protocol endpoints, host:port (9000, or 9440 with TLS).
	Addr []string `mapstructure:"addr"`
	// Username is the ClickHouse user. Empty means "default".
	Username string `mapstructure:"username"`
	// Password is best given by environment (SINK_CLICKHOUSE_PASSWORD) or
	// PasswordFile.
	Password     config.Secret `mapstructure:"password"`
	PasswordFile string        `mapstructure:"password_file"`
	TLS          config.TLS    `mapstructure:"tls"`
	// DialTimeout bounds a connection attempt. Zero means 5s.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// AllowPlaintext lets a password go to a server off this host without
	// TLS: the native protocol sends it as it is. Only on a network you
	// trust.
	AllowPlaintext bool `mapstructure:"allow_plaintext"`
}

// Resolve reads the password file and checks the TLS files; prefix is the
// block's key.
func (c *Config) Resolve(prefix string) error {
	pw, err := config.ResolveSecret(prefix+".password", c.Password, c.PasswordFile)
	c.Password = pw
	return errors.Join(c.TLS.Resolve(prefix+".tls"), err)
}

// Validate checks the resolved block under prefix.
func (c *Config) Validate(prefix string) error {
	var errs []error
	if len(c.Addr) == 0 {
		errs = append(errs, config.Invalid(prefix+".addr", "list at least one host:port"))
	}
	for i, a := range c.Addr {
		errs = append(errs, config.ValidateHostPort(fmt.Sprintf("%s.addr[%d]", prefix, i), a))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, config.Invalid(prefix+".dial_timeout", "must not be negative"))
	}
	errs = append(errs, c.TLS.Validate(prefix+".tls"))
	if c.Password != "" && !c.TLS.Enabled && !c.AllowPlaintext && slices.ContainsFunc(c.Addr, func(a string) bool { return !config.IsLoopback(a) }) {
		errs = append(errs, config.Invalid(prefix+".tls.enabled", "is false, and the native protocol would send the password as it is to %s: turn TLS on (port 9440), or, on a network you trust, set %s.allow_plaintext: true", strings.Join(c.Addr, ", "), prefix))
	}
	return errors.Join(errs...)
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateIdentifier checks a database or table name that will be written
// into SQL (ClickHouse cannot bind identifiers as parameters).
func ValidateIdentifier(key, name string) error {
	if !identifier.MatchString(name) {
		return config.Invalid(key, "must be letters, digits and _ (not starting with a digit), got %q", name)
	}
	return nil
}
