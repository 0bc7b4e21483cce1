// Package keyring is the configuration of a pseudonymization keyring: a key
// with its id and, during a rotation, the key that takes over at a given
// time. The enricher de-identifies with it; the collector's privacy API
// uses the same in-region keys to find a subject's rows and to name a
// subject in receipts without its raw identifier.
package keyring

import (
	"time"

	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/policy"
)

// Config is an HMAC key and its id. The id is written into every
// pseudonym, so a rotated key's pseudonyms stay recognisable.
type Config struct {
	KeyID string `mapstructure:"key_id"`
	// Key is at least 32 bytes (for example `openssl rand -hex 32`). Give it
	// by environment (ENRICHER_PSEUDONYM_KEY, COLLECTOR_PRIVACY_PSEUDONYM_KEY)
	// or KeyFile, never in the file.
	Key     config.Secret `mapstructure:"key"`
	KeyFile string        `mapstructure:"key_file"`
	// Next is the key that takes over at Next.From (rotation); empty
	// key_id means no rotation is scheduled.
	Next NextKey `mapstructure:"next"`
}

// NextKey is a scheduled key rotation: events received from From on are
// pseudonymized with this key. Deploy it to every instance before From.
type NextKey struct {
	KeyID   string        `mapstructure:"key_id"`
	Key     config.Secret `mapstructure:"key"`
	KeyFile string        `mapstructure:"key_file"`
	// From is an RFC 3339 time.
	From string `mapstructure:"from"`
}

// Resolve reads the key (and the next key) from inline values or files and
// checks them; key names the section, env the variable that sets the key.
func (p *Config) Resolve(key, env string) error {
	secret, err := config.ResolveSecret(key+".key", p.Key, p.KeyFile)
	p.Key = secret
	if err != nil {
		return err
	}
	if _, err := policy.NewPseudonymizer(p.KeyID, []byte(secret.Reveal())); err != nil {
		return config.Invalid(key, "%v (set %s.key_id, and %s.key by %s or %s.key_file)", err, key, key, env, key)
	}
	if p.Next.KeyID == "" {
		return nil
	}
	next, err := config.ResolveSecret(key+".next.key", p.Next.Key, p.Next.KeyFile)
	p.Next.Key = next
	if err != nil {
		return err
	}
	if _, err := policy.NewPseudonymizer(p.Next.KeyID, []byte(next.Reveal())); err != nil {
		return config.Invalid(key+".next", "%v (set by %s_NEXT_KEY or %s.next.key_file)", err, env, key)
	}
	if p.Next.KeyID == p.KeyID {
		return config.Invalid(key+".next.key_id", "must differ from %s.key_id %q: pseudonyms name their key", key, p.KeyID)
	}
	if _, err := time.Parse(time.RFC3339, p.Next.From); err != nil {
		return config.Invalid(key+".next.from", "want an RFC 3339 time such as 2027-01-01T00:00:00Z, got %q", p.Next.From)
	}
	return nil
}

// Keyring is the key and, when a rotation is scheduled, the next one.
func (p Config) Keyring() (*policy.Keyring, error) {
	keys := []policy.Key{{ID: p.KeyID, Secret: []byte(p.Key.Reveal())}}
	if p.Next.KeyID != "" {
		from, _ := time.Parse(time.RFC3339, p.Next.From) // validated
		keys = append(keys, policy.Key{ID: p.Next.KeyID, Secret: []byte(p.Next.Key.Reveal()), From: from})
	}
	return policy.NewKeyring(keys...)
}
