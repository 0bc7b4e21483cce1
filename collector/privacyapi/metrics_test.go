package privacyapi

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/internal/testenv"
)

// TestMetricsLint lints the API's metrics, on as main registers them with
// the ingest server's; the ingest package lints its own.
func TestMetricsLint(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:1"})
	privacyConfig(&cfg)
	reg := prometheus.NewRegistry()
	newCollector(t, cfg, reg, quiet)
	testenv.LintMetrics(t, reg)
}
