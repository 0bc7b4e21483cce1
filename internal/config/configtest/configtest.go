// Package configtest holds the checks that the config tests of the services
// (collector, enricher, sink) and of internal/config, chx and kafkax share:
// listing the keys an error names, hiding the developer's environment,
// running every file of testdata/good and testdata/bad, finding keys an
// all-keys file leaves unset, proving a config prints no secret and that
// the repository's shipped secrets need dev_mode.
//
// It is for tests only: import it from _test.go files, never from a service.
package configtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/config"
)

// FieldKeys lists, sorted, the keys of every config.FieldError in err's tree.
func FieldKeys(err error) []string {
	var keys []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if fe, ok := e.(*config.FieldError); ok {
			keys = append(keys, fe.Key)
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	slices.Sort(keys)
	return keys
}

// ClearEnv hides any prefix_* variable of the developer's shell from the
// test (viper treats an empty variable as unset). t.Setenv restores them.
func ClearEnv(t testing.TB, prefix string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, prefix+"_") {
			t.Setenv(k, "")
		}
	}
}

// LoadFunc loads the config file at path over the service's defaults.
type LoadFunc[C any] func(t *testing.T, path string) (C, error)

// MustLoad loads the file at path with load and stops the test if that fails.
func MustLoad[C any](t *testing.T, load LoadFunc[C], path string) C {
	t.Helper()
	cfg, err := load(t, path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return cfg
}

// RunGoodConfigs loads every dir/*.yaml (there must be at least one) in a
// subtest of its own, with the prefix_* environment cleared, and fails the
// subtest if Load fails. check, if not nil, then checks the loaded config.
func RunGoodConfigs[C any](t *testing.T, dir, envPrefix string, load LoadFunc[C], check func(t *testing.T, cfg C)) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no good configs: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			ClearEnv(t, envPrefix)
			cfg := MustLoad(t, load, path)
			if check != nil {
				check(t, cfg)
			}
		})
	}
}

// Bad is the error a file of testdata/bad must produce.
type Bad struct {
	// Keys are exactly the keys of the error's config.FieldErrors
	// (validation), each of which must also appear as "key: " in the message.
	Keys []string
	// Msg is a substring of the error (decoding errors, or extra detail).
	Msg string
}

// RunBadConfigs loads every dir/*.yaml in a subtest of its own, with the
// prefix_* environment cleared, and checks the error against the file's
// entry in table: every bad file proves the error names the file and its key.
// A file without an entry fails, and so does an entry without a file.
func RunBadConfigs[C any](t *testing.T, dir, envPrefix string, table map[string]Bad, load LoadFunc[C]) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			want, ok := table[name]
			if !ok {
				t.Fatalf("%s has no entry in the table of bad configs", name)
			}
			ClearEnv(t, envPrefix)
			_, err := load(t, path)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			if want.Keys != nil {
				if got := FieldKeys(err); !slices.Equal(got, want.Keys) {
					t.Errorf("error names keys %q, want exactly %q; error: %v", got, want.Keys, err)
				}
				for _, k := range want.Keys {
					if !strings.Contains(msg, k+": ") {
						t.Errorf("error %q does not name %s", msg, k)
					}
				}
			}
			if want.Msg != "" && !strings.Contains(msg, want.Msg) {
				t.Errorf("error %q does not contain %q", msg, want.Msg)
			}
		})
	}
	for name := range table {
		if !seen[name] {
			t.Errorf("the table of bad configs lists %s, which is not in %s", name, dir)
		}
	}
}

// ZeroLeaves lists the dotted mapstructure keys of the zero-valued leaves of
// the struct cfg, not descending into slices: the keys a file that should
// set every key leaves unset.
func ZeroLeaves(cfg any) []string {
	return zeroLeaves(reflect.Indirect(reflect.ValueOf(cfg)), "")
}

func zeroLeaves(v reflect.Value, prefix string) []string {
	var zero []string
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := f.Tag.Get("mapstructure")
		if name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "time" {
			zero = append(zero, zeroLeaves(fv, prefix+name+".")...)
			continue
		}
		if fv.IsZero() || (fv.Kind() == reflect.Slice && fv.Len() == 0) {
			zero = append(zero, prefix+name)
		}
	}
	return zero
}

// CheckSecretsHidden fails the test if cfg, printed with %v, %+v and %#v,
// printed through a pointer, or marshalled to JSON, shows any of secrets:
// a loaded config must be safe to log whole.
func CheckSecretsHidden[C any](t *testing.T, cfg C, secrets ...string) {
	t.Helper()
	if len(secrets) == 0 {
		t.Fatal("CheckSecretsHidden: no secrets to look for")
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(&cfg), string(b),
	}
	for _, out := range outputs {
		for _, secret := range secrets {
			if strings.Contains(out, secret) {
				t.Errorf("output reveals %q: %s", secret, out)
			}
		}
	}
}

// CheckDevModeGate checks the shipped-secret gate on a service's config
// at path, with the environment the caller has set (development key
// files, say): without dev mode, loading fails naming exactly keys, each
// told to take a secret of its own or dev_mode; with prefix_DEV_MODE=true
// it loads, and config.WarnDevMode, which the service's main calls, logs
// one warning that names the same keys. No error or log line may show any
// of secrets.
func CheckDevModeGate[C any](t *testing.T, load LoadFunc[C], path, envPrefix string, keys []string, secrets ...string) {
	t.Helper()
	if len(keys) == 0 || len(secrets) == 0 {
		t.Fatal("CheckDevModeGate: no keys or no secrets to look for")
	}
	t.Setenv(envPrefix+"_DEV_MODE", "false")
	_, err := load(t, path)
	if got := FieldKeys(err); !slices.Equal(got, keys) {
		t.Fatalf("Load(%s) without dev mode = %v\nwant exactly %q named", path, err, keys)
	}
	for _, k := range keys {
		if !strings.Contains(err.Error(), k+": ") || !strings.Contains(err.Error(), "set a secret of your own, or dev_mode: true") {
			t.Errorf("error %q: want %s named and dev_mode suggested", err, k)
		}
	}
	outputs := []string{err.Error()}

	t.Setenv(envPrefix+"_DEV_MODE", "true")
	cfg, err := load(t, path)
	if err != nil {
		t.Fatalf("Load(%s) with %s_DEV_MODE=true: %v", path, envPrefix, err)
	}
	var buf bytes.Buffer
	config.WarnDevMode(slog.New(slog.NewJSONHandler(&buf, nil)), &cfg)
	outputs = append(outputs, buf.String())
	var rec struct {
		Level string   `json:"level"`
		Msg   string   `json:"msg"`
		Keys  []string `json:"shipped_secrets_at"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("WarnDevMode: want one JSON record, got %q: %v", buf.String(), err)
	}
	if rec.Level != slog.LevelWarn.String() || !strings.Contains(rec.Msg, "must not run in production") {
		t.Errorf("WarnDevMode logged %+v: want a warning that the service must not run in production", rec)
	}
	if got := slices.Sorted(slices.Values(rec.Keys)); !slices.Equal(got, keys) {
		t.Errorf("WarnDevMode names %q, want %q", got, keys)
	}
	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("output reveals a secret: %s", out)
			}
		}
	}
}

// CheckValidatePure proves that the service's Validate only checks, as
// config.Validator says: it loads the file at path twice, points every
// file key of both copies (each *_file key, and file) at a path that does
// not exist, then validates one copy. Validate must still pass, reading
// none of the files, and leave that copy equal to the other. The file at
// path must name at least one file.
func CheckValidatePure[C any, P interface {
	*C
	config.Validator
}](t *testing.T, load LoadFunc[C], path string) {
	t.Helper()
	gone := filepath.Join(t.TempDir(), "gone")
	validated, kept := MustLoad(t, load, path), MustLoad(t, load, path)
	if moveFiles(reflect.ValueOf(&validated).Elem(), gone) == 0 {
		t.Fatalf("%s names no file", path)
	}
	moveFiles(reflect.ValueOf(&kept).Elem(), gone)
	if err := P(&validated).Validate(); err != nil {
		t.Errorf("Validate of the loaded %s, its files moved away: %v (Validate reads a file)", path, err)
	}
	if !reflect.DeepEqual(validated, kept) {
		t.Errorf("Validate changed the loaded %s:\n got %+v\nwant %+v", path, validated, kept)
	}
}

// moveFiles sets every non-empty string field of v tagged file or *_file
// to gone, through structs, pointers and slices, and says how many.
func moveFiles(v reflect.Value, gone string) int {
	n := 0
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			n += moveFiles(v.Elem(), gone)
		}
	case reflect.Slice:
		for i := range v.Len() {
			n += moveFiles(v.Index(i), gone)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f, fv := v.Type().Field(i), v.Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Tag.Get("mapstructure")
			if fv.Kind() == reflect.String && (name == "file" || strings.HasSuffix(name, "_file")) {
				if fv.String() != "" {
					fv.SetString(gone)
					n++
				}
				continue
			}
			n += moveFiles(fv, gone)
		}
	}
	return n
}
