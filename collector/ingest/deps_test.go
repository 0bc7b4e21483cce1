package ingest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoClickHouseDriver keeps the ClickHouse driver out of the hot path:
// only the privacy API (collector/privacyapi) reads ClickHouse.
func TestNoClickHouseDriver(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(strings.ToLower(dep), "clickhouse") {
			t.Errorf("collector/ingest imports %s", dep)
		}
	}
}
