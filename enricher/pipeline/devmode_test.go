package pipeline_test

import (
	"os"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/config/configtest"
)

// TestShippedConfigNeedsDevMode: configs/enricher.yaml with the
// development keys, as `make run` and the tests start it, is refused
// without dev mode, naming both keys, and starts in dev mode with a
// warning.
func TestShippedConfigNeedsDevMode(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("ENRICHER_PSEUDONYM_KEY_FILE", shippedKeyFile)
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_KEY_FILE", shippedExportKeyFile)
	var secrets []string
	for _, f := range []string{shippedKeyFile, shippedExportKeyFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, strings.TrimSpace(string(b)))
	}
	configtest.CheckDevModeGate(t, load, "../../configs/enricher.yaml", envPrefix,
		[]string{"export.pseudonym.key_file", "pseudonym.key_file"}, secrets...)
}

// TestNextKeyShipped: a development key scheduled as the next key is
// refused as well.
func TestNextKeyShipped(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	t.Setenv("ENRICHER_PSEUDONYM_KEY_FILE", "testdata/secrets/pseudonym.key")
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_KEY_FILE", "testdata/secrets/export.key")
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_NEXT_KEY_ID", "x2")
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_NEXT_KEY_FILE", shippedExportKeyFile)
	t.Setenv("ENRICHER_EXPORT_PSEUDONYM_NEXT_FROM", "2030-01-01T00:00:00Z")
	b, err := os.ReadFile(shippedExportKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	configtest.CheckDevModeGate(t, load, "../../configs/enricher.yaml", envPrefix,
		[]string{"export.pseudonym.next.key_file"}, strings.TrimSpace(string(b)))
}
