package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// repoRoot is the repository root seen from this package.
const repoRoot = "../.."

// shippedDirs are the folders whose files ship with the repository and go
// into images, compose stacks and Kubernetes.
var shippedDirs = []string{"configs", "deployments"}

// TestShippedSecretsFromRepository recomputes the fingerprints of every
// secret under configs/ and deployments/ and checks shippedSecrets holds
// exactly those: a development key, token or write key added to the
// repository without its fingerprint fails here, and so does an entry
// whose secret no longer ships.
func TestShippedSecretsFromRepository(t *testing.T) {
	found, err := scanShipped(repoRoot, shippedDirs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 {
		t.Fatal("no secret found under configs/ or deployments/: is the scan broken?")
	}
	for _, fp := range slices.Sorted(maps.Keys(found)) {
		where := found[fp]
		s, ok := shippedSecrets[fp]
		if !ok {
			t.Errorf("%s ships a secret whose fingerprint %s is not in shippedSecrets (shipped.go): add it", strings.Join(where, ", "), fp)
			continue
		}
		if !slices.ContainsFunc(where, func(w string) bool { return strings.HasPrefix(w, s.file) }) {
			t.Errorf("shippedSecrets says the %s ships in %s, but it is found in %s", s.what, s.file, strings.Join(where, ", "))
		}
	}
	for fp, s := range shippedSecrets {
		if _, ok := found[fp]; !ok {
			t.Errorf("shippedSecrets lists the %s (%s), which no longer ships under configs/ or deployments/: remove it", s.what, s.file)
		}
	}
}

// TestScanShippedFindsEverySecret checks the scan behind
// TestShippedSecretsFromRepository sees each way a secret can ship, so
// that test cannot pass by not looking.
func TestScanShippedFindsEverySecret(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"configs/dev-new.key":         "secret-file-by-name\n",
		"configs/other.token":         "secret-file-by-extension",
		"configs/collector.yaml":      "sources:\n  - name: a\n    write_key: yaml-write-key\n    write_key_file: not/a/secret\nkafka:\n  sasl:\n    password: yaml-password\n",
		"deployments/compose.yaml":    "services:\n  a:\n    environment:\n      A_PSEUDONYM_KEY: compose-env-key\n      A_PSEUDONYM_KEY_FILE: /run/secrets/x\nsecrets:\n  x:\n    file: ./compose-secret\n",
		"deployments/compose-secret":  "compose-secret-file",
		"deployments/k8s/secret.yaml": "apiVersion: v1\nkind: Secret\nstringData:\n  web: k8s-string-data\ndata:\n  b: " + base64.StdEncoding.EncodeToString([]byte("k8s-data")) + "\n",
		"deployments/k8s/cm.yaml":     "apiVersion: v1\nkind: ConfigMap\ndata:\n  c.yaml: |\n    token: configmap-token\n---\napiVersion: v1\nkind: Pod\nspec:\n  env:\n    - valueFrom:\n        configMapKeyRef: {name: n, key: not-a-secret}\n",
		"deployments/users.sql":       "-- BY 'not-a-secret-in-a-comment'\nCREATE USER u IDENTIFIED WITH sha256_password BY 'sql-password';\nCREATE USER v IDENTIFIED WITH sha256_hash BY '0000';\n",
		"deployments/users.xml":       "<password>xml-password</password><password_sha256_hex>00</password_sha256_hex>",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	found, err := scanShipped(root, shippedDirs...)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"secret-file-by-name", "secret-file-by-extension", "yaml-write-key", "yaml-password", "compose-env-key",
		"compose-secret-file", "k8s-string-data", "k8s-data", "configmap-token", "sql-password", "xml-password"}
	for _, s := range want {
		if _, ok := found[Fingerprint(s)]; !ok {
			t.Errorf("the scan misses %q", s)
		}
	}
	if len(found) != len(want) {
		var all []string
		for _, where := range found {
			all = append(all, where...)
		}
		t.Errorf("the scan finds %d secrets, want %d: %v", len(found), len(want), all)
	}
}

func TestIsShipped(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "configs", "dev-pseudonym.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{string(b), strings.TrimSpace(string(b)), " " + strings.TrimSpace(string(b)) + "\r\n"} {
		what, ok := IsShipped(s)
		if !ok || what != "the repository's development pseudonym key (configs/dev-pseudonym.key)" {
			t.Errorf("IsShipped(the dev pseudonym key, white space aside) = %q, %v", what, ok)
		}
	}
	for _, s := range []string{"", " \n", "a-secret-of-my-own-0123456789abcdef", strings.TrimSpace(string(b)) + "x"} {
		if what, ok := IsShipped(s); ok {
			t.Errorf("IsShipped(%q) = %q, want not shipped", s, what)
		}
	}
}

// scanShipped finds the secrets in the files under root's dirs and
// returns, by Fingerprint, where each is ("file" or "file: key"). It
// never keeps a secret itself, so a failure cannot print one.
func scanShipped(root string, dirs ...string) (map[string][]string, error) {
	found := map[string][]string{}
	add := func(secret, where string) {
		if strings.TrimSpace(secret) != "" {
			fp := Fingerprint(secret)
			found[fp] = append(found[fp], where)
		}
	}
	var secretFiles []string // named by a compose file's secrets
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			switch ext := filepath.Ext(path); {
			case isSecretFile(d.Name()):
				add(string(b), rel)
			case ext == ".yaml" || ext == ".yml":
				files, err := scanYAMLFile(b, rel, add)
				if err != nil {
					return fmt.Errorf("%s: %w", rel, err)
				}
				for _, f := range files {
					secretFiles = append(secretFiles, filepath.Join(filepath.Dir(path), f))
				}
			case ext == ".sql":
				scanSQL(b, rel, add)
			case ext == ".xml":
				for _, m := range xmlPassword.FindAllSubmatch(b, -1) {
					add(string(m[1]), rel+": <password>")
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, path := range secretFiles {
		if isSecretFile(filepath.Base(path)) {
			continue // already read
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("a compose secret's file: %w", err)
		}
		rel, _ := filepath.Rel(root, path)
		add(string(b), rel)
	}
	return found, nil
}

// isSecretFile tells a secret by its file's name: a development file
// (dev-*) that is not a config, or a key, token or password file.
func isSecretFile(name string) bool {
	ext := filepath.Ext(name)
	switch ext {
	case ".key", ".token", ".password", ".secret":
		return true
	case ".yaml", ".yml", ".md":
		return false
	}
	return strings.HasPrefix(name, "dev-")
}

var (
	sqlComment  = regexp.MustCompile(`--[^\n]*`)
	sqlPassword = regexp.MustCompile(`(?i)IDENTIFIED\s+(?:WITH\s+(\w+)\s+)?BY\s+'([^']*)'`)
	xmlPassword = regexp.MustCompile(`<password>([^<]*)</password>`)
)

// scanSQL finds passwords given in the clear to CREATE/ALTER USER (not
// their hashes).
func scanSQL(b []byte, where string, add func(secret, where string)) {
	for _, m := range sqlPassword.FindAllSubmatch(sqlComment.ReplaceAll(b, nil), -1) {
		if method := strings.ToLower(string(m[1])); !strings.HasSuffix(method, "_hash") {
			add(string(m[2]), where+": IDENTIFIED BY")
		}
	}
}

// scanYAMLFile scans every document of a YAML file and returns the files a
// compose file's top-level secrets name.
func scanYAMLFile(b []byte, where string, add func(secret, where string)) ([]string, error) {
	var files []string
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return files, nil
		} else if err != nil {
			return nil, err
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		top := doc.Content[0]
		switch kind := value(top, "kind"); {
		case value(top, "apiVersion") != nil && kind != nil:
			if err := scanManifest(top, kind.Value, where, add); err != nil {
				return nil, err
			}
		default:
			scanConfig(top, "", where, add)
			if secrets := value(top, "secrets"); secrets != nil && value(top, "services") != nil {
				for i := 1; i < len(secrets.Content); i += 2 {
					if f := value(secrets.Content[i], "file"); f != nil {
						files = append(files, f.Value)
					}
				}
			}
		}
	}
}

// scanManifest reads a Kubernetes object: a Secret's values are secrets, a
// ConfigMap's YAML files are configs; any other kind holds only references.
func scanManifest(top *yaml.Node, kind, where string, add func(secret, where string)) error {
	switch kind {
	case "Secret":
		for _, field := range []string{"stringData", "data"} {
			m := value(top, field)
			if m == nil {
				continue
			}
			for i := 0; i+1 < len(m.Content); i += 2 {
				v := m.Content[i+1].Value
				if field == "data" {
					d, err := base64.StdEncoding.DecodeString(v)
					if err != nil {
						return fmt.Errorf("Secret data %s: %w", m.Content[i].Value, err)
					}
					v = string(d)
				}
				add(v, where+": "+field+"."+m.Content[i].Value)
			}
		}
	case "ConfigMap":
		data := value(top, "data")
		if data == nil {
			return nil
		}
		for i := 0; i+1 < len(data.Content); i += 2 {
			name := data.Content[i].Value
			if ext := filepath.Ext(name); ext != ".yaml" && ext != ".yml" {
				continue
			}
			if _, err := scanYAMLFile([]byte(data.Content[i+1].Value), where+": data."+name, add); err != nil {
				return fmt.Errorf("ConfigMap data %s: %w", name, err)
			}
		}
	}
	return nil
}

// scanConfig walks a config (or a compose file) for scalar values of keys
// that hold secrets: write_key, password, token, FOO_KEY, ... but not
// key_id or *_file, which name a secret without holding it.
func scanConfig(n *yaml.Node, key, where string, add func(secret, where string)) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			child := join(key, k)
			if v.Kind == yaml.ScalarNode && v.Tag == "!!str" && isSecretKey(k) {
				add(v.Value, where+": "+child)
				continue
			}
			scanConfig(v, child, where, add)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			scanConfig(c, fmt.Sprintf("%s[%d]", key, i), where, add)
		}
	}
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	if strings.HasSuffix(k, "_file") || strings.HasSuffix(k, "_id") {
		return false
	}
	for _, s := range []string{"key", "token", "password", "secret"} {
		if k == s || strings.HasSuffix(k, "_"+s) {
			return true
		}
	}
	return false
}

// value returns the value of key in mapping n, or nil.
func value(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
