// Package config loads a service's YAML file with viper, applies environment
// overrides, rejects unknown keys, resolves the result and validates it.
//
// Loading has two steps after decoding. Resolve (a Resolver) reads what the
// config's files hold (secrets from their *_file keys, TLS certificates, a
// catalogue) and fills in the defaults that depend on other keys or on the
// host, once. Validate (a Validator) then only checks: it reads no file and
// changes nothing, so it may run any number of times on a resolved config.
//
// Data contract: every key of a service's config struct (its `mapstructure`
// tags, dotted by nesting) can be overridden by the environment variable
// PREFIX_SECTION_KEY, for example COLLECTOR_KAFKA_BROKERS=a:9092,b:9092.
// Lists of structs (such as sources) come from the file only. Validation
// errors name the dotted YAML key. Secrets are of type Secret, which never
// prints its value. Secrets shipped in this repository (demo write keys,
// development keys and tokens) are refused unless the config's dev_mode is
// true; they are recognised by fingerprint (shipped.go), and a dev-mode
// service says so at warn level (WarnDevMode).
package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Validator is a config that checks itself. Validate returns every problem
// it finds, each naming the YAML key. It reads no file and changes nothing:
// what needs a file or a default is Resolve's.
type Validator interface {
	Validate() error
}

// Resolver is a config with work to do before it is validated: reading the
// secrets its *_file keys name (a Secret then holds the file's content),
// checking that the other files it names load, and filling in defaults
// that depend on other keys or on the host. Resolve's errors name the key,
// as Validate's do. Resolving twice gives the same config.
type Resolver interface {
	Resolve() error
}

// Check does what Load does once the file is decoded: it resolves cfg, when
// cfg is a Resolver, and then validates it. A config that cannot be
// resolved is not validated, so a secret whose file is missing is reported
// once, by its *_file key, and not again as absent.
func Check(cfg Validator) error {
	if r, ok := cfg.(Resolver); ok {
		if err := r.Resolve(); err != nil {
			return err
		}
	}
	return cfg.Validate()
}

// Relative is a config that names files relative to its own file's
// folder, so that one config works from any working directory (a
// checkout's root, a test's package, a container's /etc).
type Relative interface {
	// RelativeTo makes those paths relative to dir, the folder of the
	// config file, unless they are absolute.
	RelativeTo(dir string)
}

// Load reads the YAML file at path into out (a pointer to a struct already
// holding the defaults), overlays environment variables named
// envPrefix_SECTION_KEY, rejects keys the struct does not know, then
// resolves and validates it (Check).
// A valid config that holds a secret this repository ships (a demo write
// key, a development key or token) or turns TLS certificate checks off
// (insecure_skip_verify) is refused, each such key named, unless its
// top-level dev_mode key is true (see DevModeKey).
func Load(path, envPrefix string, out Validator) error {
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	// An empty variable clears a file value (COLLECTOR_KAFKA_SASL_MECHANISM=).
	v.AllowEmptyEnv(true)
	for _, key := range leafKeys(reflect.TypeOf(out).Elem(), "") {
		if err := v.BindEnv(key); err != nil {
			return fmt.Errorf("bind environment for %s: %w", key, err)
		}
	}
	hooks := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		rejectBareDurations,
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	))
	if err := v.UnmarshalExact(out, hooks); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if r, ok := out.(Relative); ok {
		r.RelativeTo(filepath.Dir(path))
	}
	if err := Check(out); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	// After Resolve, which reads the secret files: every secret is seen.
	if err := refuseDevOnly(out); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// rejectBareDurations refuses a number where a duration belongs: YAML
// "retention: 6" would otherwise mean 6ns, and a topic pinned to
// retention.ms=0 loses its data.
func rejectBareDurations(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, fmt.Errorf("%v has no unit: write a duration such as 6h, 30s or 500ms", data)
	}
	return data, nil
}

// leafKeys lists the dotted keys of every field that holds a value rather
// than a nested struct, so each can be bound to an environment variable.
func leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("mapstructure")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "time" {
			keys = append(keys, leafKeys(f.Type, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// FieldError is a validation problem with one key.
type FieldError struct {
	Key string
	Msg string
}

// Error reads "key: message".
func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// Invalid returns a FieldError for key.
func Invalid(key, format string, args ...any) error {
	return &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Secret is a credential. It prints, logs and marshals as "[redacted]"; use
// Reveal where the value itself is needed.
type Secret string

const redacted = "[redacted]"

// String hides the value from fmt.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return s.String() }

// Format hides the value from every fmt verb, %d and %x included.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText hides the value from encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// ResolveSecret returns the secret given inline (value, usually from the
// environment) or read from file; key names the inline key in errors, and the
// file key is key+"_file". Giving both is an error, so a stale value cannot
// silently win.
func ResolveSecret(key string, value Secret, file string) (Secret, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", Invalid(key+"_file", "read secret file: %v", err)
	}
	fromFile := Secret(strings.TrimRight(string(b), "\r\n"))
	// The file's own value is what an earlier Resolve read: resolving twice
	// is harmless.
	if value != "" && value != fromFile {
		return "", Invalid(key, "set either %s or %s_file, not both", key, key)
	}
	return fromFile, nil
}
