package chwriter_test

import (
	"os"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/config/configtest"
)

// TestShippedConfigNeedsDevMode: configs/sink.yaml holds no secret, so it
// starts as shipped; given any secret the repository ships (here the
// development pseudonym key as the ClickHouse password) it is refused
// without dev mode, and starts in dev mode with a warning.
func TestShippedConfigNeedsDevMode(t *testing.T) {
	configtest.ClearEnv(t, envPrefix)
	for _, path := range []string{"../../configs/sink.yaml", "../../configs/sink-intl.yaml"} {
		if _, err := load(t, path); err != nil {
			t.Fatalf("Load(%s) as shipped, without dev mode: %v", path, err)
		}
	}
	const devKey = "../../configs/dev-pseudonym.key"
	b, err := os.ReadFile(devKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SINK_CLICKHOUSE_PASSWORD_FILE", devKey)
	t.Setenv("SINK_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("SINK_KAFKA_SASL_USERNAME", "sink")
	t.Setenv("SINK_KAFKA_SASL_PASSWORD", "demo-write-key")
	for _, path := range []string{"../../configs/sink.yaml", "../../configs/sink-intl.yaml"} {
		configtest.CheckDevModeGate(t, load, path, envPrefix,
			[]string{"clickhouse.password_file", "kafka.sasl.password"}, strings.TrimSpace(string(b)), "demo-write-key")
	}
}
