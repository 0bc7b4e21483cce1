package policy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// FuzzExport checks the cross-border properties on generated events: what
// the gate lets out holds no raw identifier, and no in-region pseudonym, so
// exported data cannot be joined with in-region data; the export subject is
// under the export key and differs from the in-region one.
func FuzzExport(f *testing.F) {
	f.Add("user-4f1c9a7e", "anon-507f191e810c", "device-B5372DB0", "356938035643809", "1.2.4.8", []byte(`{"sku":"a-1"}`))
	f.Add("same-value-1234", "same-value-1234", "same-value-1234", "same-value-1234", "2001:da8::1", []byte(`{"p":"same-value-1234"}`))
	f.Add("u", "", "", "", "", []byte(`{"note":"call u at 13812345678"}`))
	f.Add("analytics", "anon-x", "", "", "203.0.113.9", []byte(`null`))
	f.Fuzz(func(t *testing.T, user, anon, device, hw, ip string, props []byte) {
		if user == "" && anon == "" {
			return // the collector refuses events with no subject
		}
		env, _, _ := fuzzEnvelope(fuzzIDs{user, anon, device, device + "-ad", hw}, ip, "", nil, props, "")
		inRegion, exports := goldenProfiles(t)
		d := policy.Decision{Purposes: policy.Analytics, Export: true}
		in, err := policy.Parse(env)
		if err == nil {
			_, err = inRegion.Deidentify(in, d)
		}
		if err != nil {
			var fe *event.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Deidentify error %v is not a FieldError", err)
			}
			return
		}
		clean, _ := inRegion.Deidentify(in, d)
		x, err := policy.Export(in, d, exports["intl"])
		if errors.Is(err, policy.ErrGateRefused) {
			return // refused: nothing leaves
		}
		if err != nil {
			t.Fatalf("Export: %v", err)
		}
		for _, id := range in.RawIdentifiers() {
			if len(id.Value) >= 6 && bytes.Contains(x.Value(), []byte(id.Value)) {
				t.Errorf("export holds raw %s %q:\n%s", id.Field, id.Value, x.Value())
			}
		}
		var out event.Clean
		if err := json.Unmarshal(x.Value(), &out); err != nil {
			t.Fatalf("export value: %v", err)
		}
		if !strings.HasPrefix(out.Subject, "x1.") || out.Subject == clean.Subject || string(x.Key()) != out.Subject {
			t.Errorf("export subject %q (key %q), in-region %q", out.Subject, x.Key(), clean.Subject)
		}
		for _, p := range []string{clean.Subject, clean.UserID, clean.AnonymousID, clean.DeviceID, clean.AdvertisingID, clean.IMEI, clean.AndroidID, clean.MAC, clean.IP} {
			if p != "" && bytes.Contains(x.Value(), []byte(p)) {
				t.Errorf("export holds in-region value %q", p)
			}
		}
		if out.DeviceID != "" || out.AdvertisingID != "" || out.IMEI != "" || out.AndroidID != "" || out.MAC != "" || out.IP != "" || out.UserID != "" {
			t.Errorf("export keeps device-level or raw-linked fields: %+v", out)
		}
	})
}
