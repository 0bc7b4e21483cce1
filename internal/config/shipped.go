package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"unicode"
)

// DevModeKey is the top-level key of a service's config that lets it run
// with the secrets shipped in this repository (dev_mode: true, or
// <PREFIX>_DEV_MODE=true). Off by default: the demo write keys, the
// development keys and token are public, so a service that accepts them
// accepts anyone.
const DevModeKey = "dev_mode"

// shippedSecret is a secret anyone can read in this repository.
type shippedSecret struct {
	// what names it in errors, after "the repository's".
	what string
	// file is where it ships, relative to the repository root.
	file string
}

// shippedSecrets holds, by Fingerprint, every secret this repository
// ships under configs/ and deployments/: only fingerprints, so this list
// repeats no secret. TestShippedSecretsFromRepository recomputes it from
// the files and fails when a shipped secret is missing here or an entry no
// longer ships: add the new secret's fingerprint, `printf %s "$SECRET" |
// sha256sum`, with the secret trimmed of surrounding white space.
var shippedSecrets = map[string]shippedSecret{
	"8c365d0d5950e8e1ed371597bbf63992cf7613da0d65e84fbeded634b3e40c71": {"demo write key", "configs/collector.yaml"},
	"f7a915e875416ec6fb3b9377ada97427c77f7785abccd27bdc6addce9e2c7e56": {"demo backend write key", "configs/collector.yaml"},
	"00335f9a235d6af51796bd23e4567d03574bf2e86924698be8d2cf1102f3d020": {"development pseudonym key", "configs/dev-pseudonym.key"},
	"c3fbdf35184190276f878a7c58521f66fedbc4d9b89ceb538cfb7d77ab90fd52": {"development export key", "configs/dev-export.key"},
	"18e8b14e70b36352c7f2c6c4189eeeda6e4011172b4354a666cbfce0f6406a2c": {"development operator token", "configs/dev-operator.token"},
}

// Fingerprint is how a shipped secret is recognised: the SHA-256, in hex,
// of the secret trimmed of surrounding white space (so a copy with a
// newline or a stray space is the same secret).
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	return hex.EncodeToString(sum[:])
}

// IsShipped reports whether secret is one this repository ships, and then
// what it is ("the repository's demo write key (configs/collector.yaml)"),
// never the secret itself. An empty secret is not shipped.
func IsShipped(secret string) (what string, ok bool) {
	if strings.TrimSpace(secret) == "" {
		return "", false
	}
	s, ok := shippedSecrets[Fingerprint(secret)]
	if !ok {
		return "", false
	}
	return fmt.Sprintf("the repository's %s (%s)", s.what, s.file), true
}

// ShippedUse is a key of a loaded config that holds a shipped secret.
type ShippedUse struct {
	// Key is the dotted YAML key the secret came from: the *_file key
	// when it was read from a file.
	Key string
	// What the secret is, as IsShipped says.
	What string
	// FromFile is true when the secret was read from the file Key names.
	FromFile bool
}

// ShippedIn lists the keys of cfg, a pointer to a loaded config (after
// Resolve, which reads secret files), whose Secret values are secrets
// this repository ships. It finds every Secret by reflection, so a secret
// added to a config later is checked too.
func ShippedIn(cfg any) []ShippedUse {
	var uses []ShippedUse
	walkConfig(reflect.ValueOf(cfg), "", configVisitor{secret: func(key string, s Secret, fromFile bool) {
		if what, ok := IsShipped(s.Reveal()); ok {
			uses = append(uses, ShippedUse{Key: key, What: what, FromFile: fromFile})
		}
	}})
	return uses
}

// insecureTLSIn lists the insecure_skip_verify keys of cfg that are on.
func insecureTLSIn(cfg any) []string {
	var keys []string
	walkConfig(reflect.ValueOf(cfg), "", configVisitor{tls: func(key string, t TLS) {
		if t.InsecureSkipVerify {
			keys = append(keys, join(key, "insecure_skip_verify"))
		}
	}})
	return keys
}

// DevMode reports whether cfg, a pointer to a config struct, has its
// top-level dev_mode key (DevModeKey) on. A config without the key is
// never in dev mode.
func DevMode(cfg any) bool {
	v := reflect.Indirect(reflect.ValueOf(cfg))
	if v.Kind() != reflect.Struct {
		return false
	}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Tag.Get("mapstructure") == DevModeKey && f.Type.Kind() == reflect.Bool {
			return v.Field(i).Bool()
		}
	}
	return false
}

// refuseDevOnly fails with an error per key of cfg that holds a shipped
// secret or turns TLS certificate checks off, unless cfg is in dev mode:
// either lets anyone in (a public secret) or between (any certificate).
func refuseDevOnly(cfg any) error {
	if DevMode(cfg) {
		return nil
	}
	var errs []error
	for _, u := range ShippedIn(cfg) {
		verb := "is"
		if u.FromFile {
			verb = "holds"
		}
		errs = append(errs, Invalid(u.Key, "%s %s; set a secret of your own, or %s: true for a development setup", verb, u.What, DevModeKey))
	}
	for _, key := range insecureTLSIn(cfg) {
		errs = append(errs, Invalid(key, "turns certificate checks off, which lets anyone on the path read and change the traffic; give the CA (ca_file) instead, or %s: true for a development setup", DevModeKey))
	}
	return errors.Join(errs...)
}

// WarnDevMode logs, at warn, that the service runs in dev mode and so
// accepts the repository's secrets, with the keys that hold them (never
// their values). It does nothing unless cfg is in dev mode. Each service's
// main calls it once its logger exists, so the warning opens its log.
func WarnDevMode(log *slog.Logger, cfg any) {
	if !DevMode(cfg) {
		return
	}
	keys := []string{}
	for _, u := range ShippedIn(cfg) {
		keys = append(keys, u.Key)
	}
	log.Warn("DEV MODE: dev_mode is true, so this service accepts the repository's demo secrets (write keys, keys and tokens anyone can read); it must not run in production",
		"dev_mode", true, "shipped_secrets_at", keys)
}

var (
	secretType = reflect.TypeFor[Secret]()
	tlsType    = reflect.TypeFor[TLS]()
)

// configVisitor is what walkConfig calls on the values it looks for; a nil
// function is not called.
type configVisitor struct {
	secret func(key string, s Secret, fromFile bool)
	tls    func(key string, t TLS)
}

// walkConfig calls visit with every Secret and TLS block in v and its
// dotted key, as Validate errors name keys: sources[0].write_key,
// consent_tokens.keys[1].key. A Secret read from a file is named by its
// *_file key. A Secret field tagged mapstructure:"-" (read from a file
// only, such as an operator's token) takes its name from its field: Token
// is token, read from token_file.
func walkConfig(v reflect.Value, key string, visit configVisitor) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Type() {
	case secretType:
		if visit.secret != nil {
			visit.secret(key, Secret(v.String()), false)
		}
		return
	case tlsType:
		if visit.tls != nil {
			visit.tls(key, v.Interface().(TLS))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("mapstructure")
			if f.Type == secretType && name == "-" {
				name = snake(f.Name)
			}
			if name == "" || name == "-" {
				continue
			}
			child := join(key, name)
			if f.Type == secretType {
				file := fileField(v, name+"_file")
				if file != "" {
					child = join(key, name+"_file")
				}
				if visit.secret != nil {
					visit.secret(child, Secret(v.Field(i).String()), file != "")
				}
				continue
			}
			walkConfig(v.Field(i), child, visit)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkConfig(v.Index(i), fmt.Sprintf("%s[%d]", key, i), visit)
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			walkConfig(v.MapIndex(k), join(key, k.String()), visit)
		}
	}
}

// fileField returns the value of the string field of struct v tagged
// name (such as write_key_file), or "" without one.
func fileField(v reflect.Value, name string) string {
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Tag.Get("mapstructure") == name && f.Type.Kind() == reflect.String {
			return v.Field(i).String()
		}
	}
	return ""
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// snake turns a Go field name into a YAML key: TokenFile is token_file.
func snake(name string) string {
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
