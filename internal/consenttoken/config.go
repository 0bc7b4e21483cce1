package consenttoken

import (
	"errors"
	"fmt"
	"time"

	"github.com/consentflow/consentflow/internal/config"
)

// Config is the consent token section of a service's config (the
// collector's consent_tokens).
type Config struct {
	// Keys verify tokens; empty means consent tokens are off (a token in a
	// request is then refused). Two keys overlap during a rotation.
	Keys []KeyConfig `mapstructure:"keys"`
	// MaxLifetime is the longest a token may live, from iat to exp; it must
	// be positive. Default 1h. Keep it short: a token can be replayed until
	// it expires.
	MaxLifetime time.Duration `mapstructure:"max_lifetime"`
	// Leeway is the clock skew allowed between the issuing backend and the
	// collector, applied to exp, iat and nbf; zero allows none. Default 1m.
	Leeway time.Duration `mapstructure:"leeway"`
}

// KeyConfig is one key that verifies consent tokens.
type KeyConfig struct {
	// KeyID is the id tokens carry in their kid header: 1 to 64 printable
	// ASCII characters without spaces, distinct among keys.
	KeyID string `mapstructure:"key_id"`
	// Key is the HMAC secret shared with the issuing backend, at least 32
	// bytes (for example `openssl rand -hex 32`, used as its 64 characters).
	// Give it by KeyFile: a list cannot be overridden from the environment,
	// and a secret does not belong in the config file.
	Key     config.Secret `mapstructure:"key"`
	KeyFile string        `mapstructure:"key_file"`
}

// Default returns the defaults: no keys (tokens off), a maximum lifetime of
// one hour and a leeway of one minute.
func Default() Config {
	return Config{MaxLifetime: time.Hour, Leeway: time.Minute}
}

// Resolve reads each key's secret from its inline value or file; prefix is
// the section's dotted key (consent_tokens). It returns every problem
// found, each a *config.FieldError naming its key.
func (c *Config) Resolve(prefix string) error {
	var errs []error
	for i := range c.Keys {
		k := &c.Keys[i]
		secret, err := config.ResolveSecret(fmt.Sprintf("%s.keys[%d].key", prefix, i), k.Key, k.KeyFile)
		k.Key = secret
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Validate checks the resolved section as NewVerifier would; prefix is the
// section's dotted key (consent_tokens). It returns every problem found,
// each a *config.FieldError naming its key.
func (c *Config) Validate(prefix string) error {
	var errs []error
	seen := make(map[string]int, len(c.Keys))
	for i, k := range c.Keys {
		key := fmt.Sprintf("%s.keys[%d]", prefix, i)
		if err := checkKeyID(k.KeyID); err != nil {
			errs = append(errs, config.Invalid(key+".key_id", "%v", err))
		} else if j, dup := seen[k.KeyID]; dup {
			errs = append(errs, config.Invalid(key+".key_id", "duplicate key id %q (also %s.keys[%d])", k.KeyID, prefix, j))
		} else {
			seen[k.KeyID] = i
		}
		switch {
		case k.Key == "":
			errs = append(errs, config.Invalid(key+".key", "is required: set %s.key_file to a file holding at least %d bytes", key, MinSecretBytes))
		case len(k.Key) < MinSecretBytes:
			errs = append(errs, config.Invalid(key+".key", "is %d bytes, want at least %d", len(k.Key), MinSecretBytes))
		default:
			for j := range i {
				if prev := c.Keys[j].Key; prev != "" && sameSecret([]byte(prev.Reveal()), []byte(k.Key.Reveal())) {
					errs = append(errs, config.Invalid(key+".key", "same secret as %s.keys[%d]: each key id needs its own secret", prefix, j))
					break
				}
			}
		}
	}
	if c.MaxLifetime <= 0 {
		errs = append(errs, config.Invalid(prefix+".max_lifetime", "must be positive, got %s", c.MaxLifetime))
	}
	if c.Leeway < 0 {
		errs = append(errs, config.Invalid(prefix+".leeway", "must not be negative, got %s", c.Leeway))
	}
	return errors.Join(errs...)
}

// Verifier returns the verifier for the resolved, valid keys (call Resolve
// and Validate first),
// or nil and no error when there are none and consent tokens are off.
func (c Config) Verifier() (*Verifier, error) {
	if len(c.Keys) == 0 {
		return nil, nil
	}
	keys := make([]Key, len(c.Keys))
	for i, k := range c.Keys {
		keys[i] = Key{ID: k.KeyID, Secret: []byte(k.Key.Reveal())}
	}
	return NewVerifier(keys, c.MaxLifetime, c.Leeway)
}
