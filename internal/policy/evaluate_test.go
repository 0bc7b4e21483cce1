package policy_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/catalogue"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// The golden tests' deployment: an in-region profile whose key rotates from
// k1 to k2 on 2026-06-01, and an export profile under its own key.
var (
	rotatedKey   = []byte("consentflow-golden-rotated-key-0123456789ab")
	exportKey    = []byte("consentflow-golden-export-key-0123456789abc")
	rotationTime = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

	goldenInRegion = policy.Settings{IP: "truncate", DeviceIDs: true, UserAgent: "parse", Detail: "full", Undeclared: policy.UndeclaredScrub,
		DropFields:    []string{"properties.internal_note", "context.page.title"},
		ScrubPatterns: []policy.ScrubPattern{{Name: "order_ref", Pattern: `ORD-\d{6}`}}}
	goldenExport = policy.Settings{IP: "drop", UserAgent: "parse", Detail: "coarse",
		DropFields: goldenInRegion.DropFields, ScrubPatterns: goldenInRegion.ScrubPatterns}
	goldenRules = policy.Rules{
		Defaults:   map[string]policy.Purposes{"backend": policy.Analytics},
		Categories: policy.CategoryMap{"analytics": policy.Analytics, "advertising": policy.Marketing, "functional": policy.Personalization},
	}
)

func goldenProfiles(t testing.TB) (*policy.Profile, map[string]*policy.Profile) {
	cat, err := catalogue.Load(filepath.Join("testdata", "catalogue.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inRegion := newDeclaredProfile(t, goldenInRegion, policy.Declared{Catalogue: cat, Categories: goldenRules.Categories},
		policy.Key{ID: testKeyID, Secret: testKey}, policy.Key{ID: "k2", Secret: rotatedKey, From: rotationTime})
	export := newDeclaredProfile(t, goldenExport, policy.Declared{Catalogue: cat, Export: true, Categories: goldenRules.Categories}, policy.Key{ID: "x1", Secret: exportKey})
	return inRegion, map[string]*policy.Profile{"intl": export}
}

// TestEvaluateGolden judges every testdata/decisions/<case>.json (a
// policy.Case: an envelope, the subject's consent records, suppression)
// and testdata/declared/<case>.json, and compares the report with
// <case>.golden. decisions has one case per rule: each drop reason,
// consent ordering, default grants, consent carried in events, export,
// the gate, key rotation; declared one per class of the catalogue
// (testdata/catalogue.yaml), per kind of departure from it, and the leaks
// it exists to stop. Run with -update to rewrite.
func TestEvaluateGolden(t *testing.T) {
	inRegion, exports := goldenProfiles(t)
	for _, dir := range []string{"decisions", "declared"} {
		t.Run(dir, func(t *testing.T) { evaluateGolden(t, dir, inRegion, exports) })
	}
}

func evaluateGolden(t *testing.T, dir string, inRegion *policy.Profile, exports map[string]*policy.Profile) {
	forEachCase(t, filepath.Join("testdata", dir), func(t *testing.T, name string, c *policy.Case) {
		envJSON, _ := json.Marshal(c.Envelope)
		if _, err := event.DecodeEnvelope(envJSON); err != nil {
			t.Fatalf("case envelope is not valid: %v", err)
		}
		rep, err := policy.Evaluate(*c, goldenRules, "clean", inRegion, exports)
		if err != nil {
			t.Fatalf("Evaluate: %v", err)
		}
		got, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		compareGolden(t, filepath.Join("testdata", dir, name+".golden"), got)
		for dest, o := range rep.Destinations {
			in, err := policy.Parse(c.Envelope)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range in.RawIdentifiers() {
				if dest != "clean" && bytes.Contains(o.Event, []byte(id.Value)) {
					t.Errorf("%s output holds raw %s", dest, id.Field)
				}
			}
		}
	})
}
