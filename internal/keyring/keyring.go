// Package keyring is the configuration of a pseudonymization keyring: a key
// with its id, during a rotation the key that takes over at a given time,
// and the retired keys whose pseudonyms may still be in the data. The
// enricher de-identifies with it and names every key's pseudonyms in
// erasure notices; the collector's privacy API uses the same keys to find a
// subject's rows and to name a subject in receipts without its raw
// identifier.
package keyring

import (
	"fmt"
	"maps"
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
	// Retired are keys no longer in service whose pseudonyms may still be
	// stored (ClickHouse rows until retention drops them, backups): they
	// pseudonymize nothing new, and erasure, its verification and export
	// compute a subject's pseudonyms under them too. From the file only.
	Retired []RetiredKey `mapstructure:"retired"`
}

// RetiredKey is a key taken out of service, kept for erasure and export.
type RetiredKey struct {
	KeyID   string `mapstructure:"key_id"`
	KeyFile string `mapstructure:"key_file"`
	// Key is read from KeyFile by Resolve.
	Key config.Secret `mapstructure:"-"`
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

// Resolve reads the key, each retired key and, when a rotation is
// scheduled, the next key, from their inline values or files; key names
// the section. It stops at the first problem, as Validate does.
func (p *Config) Resolve(key string) error {
	secret, err := config.ResolveSecret(key+".key", p.Key, p.KeyFile)
	p.Key = secret
	if err != nil {
		return err
	}
	for i := range p.Retired {
		r := &p.Retired[i]
		if r.KeyID == "" || r.KeyFile == "" {
			continue // Validate names what is missing
		}
		if r.Key, err = config.ResolveSecret(fmt.Sprintf("%s.retired[%d].key", key, i), "", r.KeyFile); err != nil {
			return err
		}
	}
	if p.Next.KeyID == "" {
		return nil
	}
	next, err := config.ResolveSecret(key+".next.key", p.Next.Key, p.Next.KeyFile)
	p.Next.Key = next
	return err
}

// Validate checks the resolved keyring; key names the section, env the
// variable that sets the key. It returns the first problem only: one
// missing key would otherwise be reported again by every key beside it.
func (p *Config) Validate(key, env string) error {
	if _, err := policy.NewPseudonymizer(p.KeyID, []byte(p.Key.Reveal())); err != nil {
		return config.Invalid(key, "%v (set %s.key_id, and %s.key by %s or %s.key_file)", err, key, key, env, key)
	}
	if err := p.validateRetired(key); err != nil {
		return err
	}
	if p.Next.KeyID == "" {
		return nil
	}
	if _, err := policy.NewPseudonymizer(p.Next.KeyID, []byte(p.Next.Key.Reveal())); err != nil {
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

// validateRetired checks each retired key; ids are unique across the
// keyring, because a pseudonym names its key.
func (p *Config) validateRetired(key string) error {
	seen := map[string]string{p.KeyID: key + ".key_id"}
	if p.Next.KeyID != "" {
		seen[p.Next.KeyID] = key + ".next.key_id"
	}
	for i, r := range p.Retired {
		at := fmt.Sprintf("%s.retired[%d]", key, i)
		if r.KeyID == "" || r.KeyFile == "" {
			return config.Invalid(at, "needs key_id and key_file (the key as it was in service)")
		}
		if other, ok := seen[r.KeyID]; ok {
			return config.Invalid(at+".key_id", "%q is also %s: pseudonyms name their key, so ids are unique", r.KeyID, other)
		}
		seen[r.KeyID] = at + ".key_id"
		if _, err := policy.NewPseudonymizer(r.KeyID, []byte(r.Key.Reveal())); err != nil {
			return config.Invalid(at, "%v", err)
		}
	}
	return nil
}

// Keyring is the key, the next one when a rotation is scheduled, and the
// retired ones.
func (p Config) Keyring() (*policy.Keyring, error) {
	keys := []policy.Key{{ID: p.KeyID, Secret: []byte(p.Key.Reveal())}}
	if p.Next.KeyID != "" {
		from, _ := time.Parse(time.RFC3339, p.Next.From) // validated
		keys = append(keys, policy.Key{ID: p.Next.KeyID, Secret: []byte(p.Next.Key.Reveal()), From: from})
	}
	for _, r := range p.Retired {
		keys = append(keys, policy.Key{ID: r.KeyID, Secret: []byte(r.Key.Reveal()), Retired: true})
	}
	return policy.NewKeyring(keys...)
}

// Secrets are the keyring's keys by the key that sets each (under
// section), for checks that two keyrings share none.
func (p Config) Secrets(section string) map[string]config.Secret {
	out := map[string]config.Secret{section + ".key": p.Key, section + ".next.key": p.Next.Key}
	for i, r := range p.Retired {
		out[fmt.Sprintf("%s.retired[%d].key_file", section, i)] = r.Key
	}
	maps.DeleteFunc(out, func(_ string, s config.Secret) bool { return s == "" })
	return out
}
