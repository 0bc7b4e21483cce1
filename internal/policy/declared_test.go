package policy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// issueLeaks are the values of the leaking event: personal data a product
// team put in properties, each of a kind the catalogue or the scrubbers
// must stop.
var issueLeaks = []string{"203.0.113.77", "6D92078A-8246-4BA4-AE5B-76104861E7DC", "a4:83:e7:12:34:56", "9774d56d682e549c",
	"31.2304", "121.4737", "740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad", "555-0132", "198.51.100.23",
	"buyer@example.com", "7911 123456"}

// TestIssueLeaksStopped: none of the leaking values reaches either
// destination, whether the event is declared (its declared public values
// do arrive abroad) or not (its name does not leave either).
func TestIssueLeaksStopped(t *testing.T) {
	clean, exports := goldenProfiles(t)
	for _, name := range []string{"issue_leaks_declared_event", "issue_leaks_in_event_name"} {
		t.Run(name, func(t *testing.T) {
			var c policy.Case
			readJSON(t, filepath.Join("testdata", "declared", name+".json"), &c)
			rep, err := policy.Evaluate(c, goldenRules, "clean", clean, exports)
			if err != nil {
				t.Fatal(err)
			}
			for dest, out := range rep.Destinations {
				if out.Event == nil {
					t.Fatalf("%s: no event (%s)", dest, out.Skipped)
				}
				for _, leak := range issueLeaks {
					if strings.Contains(string(out.Event), leak) {
						t.Errorf("%s holds %q:\n%s", dest, leak, out.Event)
					}
				}
			}
			abroad := string(rep.Destinations["intl"].Event)
			if name == "issue_leaks_declared_event" {
				if !strings.Contains(abroad, `"revenue":25`) || !strings.Contains(abroad, `"currency":"CNY"`) || !strings.Contains(abroad, `"event":"Order Completed"`) {
					t.Errorf("the declared public values did not arrive abroad:\n%s", abroad)
				}
				if strings.Contains(abroad, "ORD-503148") {
					t.Errorf("an internal value left the region:\n%s", abroad)
				}
			} else if !strings.Contains(abroad, `"event":"(undeclared)"`) {
				t.Errorf("an undeclared event's name left the region:\n%s", abroad)
			}
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestExportKeepsOnlyDeclaredPublic: an export profile keeps declared
// public values only, even one whose settings would scrub undeclared
// properties (the enricher's config refuses that; the profile does not
// rely on it).
func TestExportKeepsOnlyDeclaredPublic(t *testing.T) {
	_, exports := goldenProfiles(t)
	cat := exports["intl"]
	scrubbing := goldenExport
	scrubbing.Undeclared = policy.UndeclaredScrub
	export := newDeclaredProfile(t, scrubbing, cat.Declared(), policy.Key{ID: "x1", Secret: exportKey})
	var c policy.Case
	readJSON(t, filepath.Join("testdata", "declared", "every_class.json"), &c)
	rep, err := policy.Evaluate(c, goldenRules, "clean", newTestProfile(t, goldenInRegion), map[string]*policy.Profile{"intl": export})
	if err != nil {
		t.Fatal(err)
	}
	var out event.Clean
	if err := json.Unmarshal(rep.Destinations["intl"].Event, &out); err != nil {
		t.Fatal(err)
	}
	if want := `{"coupon":null,"currency":"CNY","products":[{"quantity":2,"sku":"sku-1"},{"sku":"sku-2"}],"revenue":25.5,"shipping":{"geo":{}},"tags":["new","sale"]}`; string(out.Properties) != want {
		t.Errorf("exported properties\n%s\nwant the declared public ones only\n%s", out.Properties, want)
	}
}

// TestUserAgentFamiliesArePlainNames: ua-parser's generic rules take a
// family from the user agent itself; a client that writes personal data
// there finds it in neither destination.
func TestUserAgentFamiliesArePlainNames(t *testing.T) {
	agents := testAgents()
	for ua, want := range map[string]policy.Agent{
		"ua.leak@example.com/1.0 CFNetwork/1410.0.3 Darwin/22.6.0": {OS: "iOS", OSVersion: "16", DeviceClass: "mobile"},
		"13800138000/1.0 CFNetwork/1410.0.3 Darwin/22.6.0":         {OS: "iOS", OSVersion: "16", DeviceClass: "mobile"},
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1": {
			Browser: "Mobile Safari", BrowserVersion: "17", OS: "iOS", OSVersion: "17", DeviceClass: "mobile"},
	} {
		if got := agents.Parse(ua); got != want {
			t.Errorf("Parse(%q) = %+v, want %+v", ua, got, want)
		}
	}
}
