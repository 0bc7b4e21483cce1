// Package kafkax builds franz-go clients from config (brokers, TLS, SASL,
// kprom metrics), creates or checks the topics a service uses, and makes
// dead letters: pointers to the records a stage refused, which hold
// nothing of them (DeadLetter).
//
// Metrics: every client registers franz-go's kprom metrics under the
// service's namespace (collector_, enricher_, sink_) in the service's own
// registry.
package kafkax

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/consentflow/consentflow/internal/config"
)

// Config is how a service reaches Kafka.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `mapstructure:"brokers"`
	// ClientID names this client in broker logs and quotas.
	ClientID string `mapstructure:"client_id"`
	// DialTimeout bounds a connection attempt. Zero means 10s.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// SessionTimeout is how long a consumer group waits for a member that
	// stopped heartbeating before handing its partitions to others: after
	// a crash, its partitions stall this long. Zero means 45s.
	SessionTimeout time.Duration `mapstructure:"session_timeout"`
	TLS            config.TLS    `mapstructure:"tls"`
	SASL           SASL          `mapstructure:"sasl"`
}

// SASL authenticates the client. An empty mechanism means none.
//
// PLAIN sends the password itself, so it is refused without TLS unless
// AllowPlaintext says so. SCRAM is accepted without TLS: it never sends
// the password, only a proof the broker checks (though an eavesdropper
// who records the exchange may try to guess a weak password offline, and
// the records themselves still travel in clear: use TLS in production).
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string `mapstructure:"mechanism"`
	Username  string `mapstructure:"username"`
	// Password is best given by environment (e.g. COLLECTOR_KAFKA_SASL_PASSWORD)
	// or by PasswordFile.
	Password     config.Secret `mapstructure:"password"`
	PasswordFile string        `mapstructure:"password_file"`
	// AllowPlaintext lets PLAIN run without TLS, its password readable on
	// the wire: only on a network you trust, such as a local broker.
	AllowPlaintext bool `mapstructure:"allow_plaintext"`
}

var mechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// Resolve upper-cases the SASL mechanism, reads the SASL password file
// when a mechanism is named, and checks the TLS files; prefix is the
// block's key (usually "kafka").
func (c *Config) Resolve(prefix string) error {
	errs := []error{c.TLS.Resolve(prefix + ".tls")}
	s := &c.SASL
	if s.Mechanism != "" {
		s.Mechanism = strings.ToUpper(s.Mechanism)
		pw, err := config.ResolveSecret(prefix+".sasl.password", s.Password, s.PasswordFile)
		s.Password = pw
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Validate checks the resolved block under prefix (usually "kafka").
func (c *Config) Validate(prefix string) error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, config.Invalid(prefix+".brokers", "list at least one broker (host:port)"))
	}
	for i, b := range c.Brokers {
		errs = append(errs, config.ValidateHostPort(fmt.Sprintf("%s.brokers[%d]", prefix, i), b))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, config.Invalid(prefix+".dial_timeout", "must not be negative"))
	}
	if c.SessionTimeout != 0 && c.SessionTimeout < 6*time.Second {
		// Brokers refuse sessions under group.min.session.timeout.ms (6s).
		errs = append(errs, config.Invalid(prefix+".session_timeout", "must be zero (45s) or at least 6s, got %v", c.SessionTimeout))
	}
	errs = append(errs, c.TLS.Validate(prefix+".tls"), c.SASL.validate(prefix, c.TLS.Enabled))
	return errors.Join(errs...)
}

// validate checks the SASL block of the Kafka block under prefix.
func (s SASL) validate(prefix string, tls bool) error {
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
			return config.Invalid(prefix+".sasl.mechanism", "is empty, so the SASL username and password set would be ignored: name a mechanism or remove them")
		}
		return nil
	}
	var errs []error
	if !slices.Contains(mechanisms, s.Mechanism) {
		errs = append(errs, config.Invalid(prefix+".sasl.mechanism", "must be one of %s, got %q", strings.Join(mechanisms, ", "), s.Mechanism))
	}
	if s.Username == "" {
		errs = append(errs, config.Invalid(prefix+".sasl.username", "is required with a SASL mechanism"))
	}
	if s.Password == "" {
		errs = append(errs, config.Invalid(prefix+".sasl.password", "is required with a SASL mechanism (set it by environment or password_file)"))
	}
	if s.Mechanism == "PLAIN" && !tls && !s.AllowPlaintext {
		errs = append(errs, config.Invalid(prefix+".sasl.mechanism", "is PLAIN, which sends the password as it is, and %s.tls.enabled is false: turn TLS on, use SCRAM-SHA-256 or SCRAM-SHA-512, or, on a network you trust, set %s.sasl.allow_plaintext: true", prefix, prefix))
	}
	return errors.Join(errs...)
}

// Opts returns the franz-go options for brokers, TLS and SASL.
func (c *Config) Opts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if c.DialTimeout > 0 {
		opts = append(opts, kgo.DialTimeout(c.DialTimeout))
	}
	if c.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(c.SessionTimeout), kgo.RebalanceTimeout(c.SessionTimeout+5*time.Second))
	}
	tlsCfg, err := c.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("kafka tls: %w", err)
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	s := c.SASL
	switch s.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsSha512Mechanism()))
	case "":
	default:
		// Never fall back to an unauthenticated connection.
		return nil, fmt.Errorf("kafka sasl: unknown mechanism %q (validate the config first)", s.Mechanism)
	}
	return opts, nil
}
