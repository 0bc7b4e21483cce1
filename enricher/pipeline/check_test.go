package pipeline

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/policy"
)

func TestCheckPolicy(t *testing.T) {
	cfg := testConfig(nil)
	check := func(t *testing.T, source string, input []byte) policy.Report {
		t.Helper()
		var out bytes.Buffer
		if err := CheckPolicy(cfg, source, bytes.NewReader(input), &out); err != nil {
			t.Fatalf("CheckPolicy: %v", err)
		}
		var r policy.Report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("output is not a report: %v\n%s", err, out.Bytes())
		}
		return r
	}

	t.Run("a case with cross-border consent reaches both destinations", func(t *testing.T) {
		input, err := os.ReadFile("../../internal/policy/testdata/decisions/cross_border_export.json")
		if err != nil {
			t.Fatal(err)
		}
		r := check(t, "", input)
		var clean, export struct{ Subject, DeviceID string }
		_ = json.Unmarshal(r.Destinations["clean"].Event, &clean)
		_ = json.Unmarshal(r.Destinations["intl"].Event, &export)
		if !r.Kept || !strings.HasPrefix(clean.Subject, "t1.") || !strings.HasPrefix(export.Subject, "x1.") || clean.DeviceID == "" || export.DeviceID != "" {
			t.Errorf("report %+v: want kept, clean under t1 with a device id, export under x1 without", r)
		}
	})
	t.Run("a bare event without consent is dropped", func(t *testing.T) {
		r := check(t, "app", []byte(`{"type":"track","event":"Viewed","userId":"u-1"}`))
		if r.Kept || r.Dropped != "no_consent" || r.Destinations["intl"].Skipped == "" {
			t.Errorf("report %+v: want dropped for no_consent at every destination", r)
		}
	})
	t.Run("a bare event from a source with a default grant is kept", func(t *testing.T) {
		r := check(t, "web", []byte(`{"type":"track","event":"Viewed","userId":"u-1"}`))
		if !r.Kept || !r.ByDefault || r.Destinations["intl"].Skipped != "no cross-border consent" {
			t.Errorf("report %+v: want kept by default, not exported", r)
		}
	})
	t.Run("bad input names the problem", func(t *testing.T) {
		err := CheckPolicy(cfg, "web", strings.NewReader(`{"type":"nope"}`), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), `unknown type "nope"`) {
			t.Errorf("CheckPolicy(bad type) = %v", err)
		}
	})
}
