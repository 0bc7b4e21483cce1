package ingest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/config/configtest"
)

// The repository's development files, seen from this package.
const (
	devPseudonymKeyFile  = "../../configs/dev-pseudonym.key"
	devOperatorTokenFile = "../../configs/dev-operator.token"
)

// devSecrets are the values of the shipped secrets the collector's
// development setup holds, for checks that none is printed.
func devSecrets(t *testing.T) []string {
	t.Helper()
	secrets := []string{"demo-write-key", "demo-backend-write-key"}
	for _, f := range []string{devPseudonymKeyFile, devOperatorTokenFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, strings.TrimSpace(string(b)))
	}
	return secrets
}

// TestShippedConfigNeedsDevMode: configs/collector.yaml as shipped holds
// the demo write keys, so it starts only in dev mode, with a warning.
func TestShippedConfigNeedsDevMode(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	configtest.CheckDevModeGate(t, load, "../../configs/collector.yaml", envPrefix,
		[]string{"sources[0].write_key", "sources[1].write_key"}, devSecrets(t)...)
}

// TestRunConfigNeedsDevMode: the collector as `make run` starts it (the
// shipped config with the dev operator switched on, as scripts/run.sh
// does, and the development pseudonym and export keys) names every shipped secret it
// holds, and starts in dev mode.
func TestRunConfigNeedsDevMode(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	b, err := os.ReadFile("../../configs/collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const line = "  operators: []\n"
	if !strings.Contains(string(b), line) {
		t.Fatalf("configs/collector.yaml has no line %q for scripts/run.sh to switch the dev operator on in", line)
	}
	run := strings.Replace(string(b), line, "  operators: [{name: dev, token_file: "+devOperatorTokenFile+"}]\n", 1)
	path := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(path, []byte(run), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COLLECTOR_PRIVACY_PSEUDONYM_KEY_FILE", devPseudonymKeyFile)
	t.Setenv("COLLECTOR_PRIVACY_EXPORT_ABROAD_PSEUDONYM_KEY_FILE", "../../configs/dev-export.key")
	configtest.CheckDevModeGate(t, load, path, envPrefix,
		[]string{"privacy.export.abroad.pseudonym.key_file", "privacy.operators[0].token_file", "privacy.pseudonym.key_file", "sources[0].write_key", "sources[1].write_key"},
		devSecrets(t)...)
}

// TestConsentTokenKeyShipped: a development key as a consent token key,
// and a shipped secret as the export's ClickHouse password, are refused
// like the rest.
func TestConsentTokenKeyShipped(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	const devExportKeyFile = "../../configs/dev-export.key"
	path := filepath.Join(t.TempDir(), "collector.yaml")
	yaml := "sources:\n  - name: app\n    write_key: app-write-key\n" +
		"consent_tokens:\n  keys:\n    - key_id: ct1\n      key_file: " + devExportKeyFile + "\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(devExportKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("COLLECTOR_PRIVACY_EXPORT_CLICKHOUSE_PASSWORD", "demo-backend-write-key")
	configtest.CheckDevModeGate(t, load, path, envPrefix,
		[]string{"consent_tokens.keys[0].key_file", "privacy.export.clickhouse.password"},
		strings.TrimSpace(string(b)), "demo-backend-write-key")
}
