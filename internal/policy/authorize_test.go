package policy_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/policy"
)

// consentWriteCase is one testdata/consent_writes/<case>.json: a source, a
// POST /v1/consent body, what a consent token vouches for, and the
// subject's consent in force before.
type consentWriteCase struct {
	Source   string          `json:"source"` // client or server
	Update   json.RawMessage `json:"update"`
	Token    *voucherJSON    `json:"token,omitempty"`
	Previous *consentJSON    `json:"previous,omitempty"`
}

type voucherJSON struct {
	UserID          string   `json:"userId,omitempty"`
	AnonymousID     string   `json:"anonymousId,omitempty"`
	Purposes        []string `json:"purposes,omitempty"`
	CrossBorder     bool     `json:"crossBorder,omitempty"`
	GuardianConsent bool     `json:"guardianConsent,omitempty"`
	Minor           *bool    `json:"minor,omitempty"`
	// Stale: issued before the subject's consent last changed.
	Stale bool `json:"stale,omitempty"`
}

type consentJSON struct {
	Purposes        []string `json:"purposes"`
	CrossBorder     bool     `json:"crossBorder"`
	Minor           bool     `json:"minor"`
	GuardianConsent bool     `json:"guardianConsent"`
}

type consentWriteResult struct {
	Consent *consentJSON `json:"consent,omitempty"`
	Refused *struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
		Error  string `json:"error"`
	} `json:"refused,omitempty"`
}

// TestAuthorizeConsentGolden runs every testdata/consent_writes/<case>.json
// through policy.AuthorizeConsent and compares the consent it records, or
// its refusal, with <case>.golden: one case per rule of who may say what,
// and its legitimate counterpart. Run with -update to rewrite.
func TestAuthorizeConsentGolden(t *testing.T) {
	dir := filepath.Join("testdata", "consent_writes")
	forEachCase(t, dir, func(t *testing.T, name string, c *consentWriteCase) {
		got, err := json.MarshalIndent(authorizeCase(t, *c), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		compareGolden(t, filepath.Join(dir, name+".golden"), append(got, '\n'))
	})
}

func authorizeCase(t *testing.T, c consentWriteCase) consentWriteResult {
	u, err := event.DecodeConsentUpdate(c.Update)
	if err != nil {
		t.Fatalf("case update: %v", err)
	}
	var prev policy.Consent
	if c.Previous != nil {
		prev = policy.Consent{Known: true, Purposes: mustPurposes(t, c.Previous.Purposes), CrossBorder: c.Previous.CrossBorder,
			Minor: c.Previous.Minor, GuardianConsent: c.Previous.GuardianConsent}
	}
	var v *policy.Voucher
	if c.Token != nil {
		v = &policy.Voucher{UserID: c.Token.UserID, AnonymousID: c.Token.AnonymousID, Purposes: mustPurposes(t, c.Token.Purposes),
			CrossBorder: c.Token.CrossBorder, GuardianConsent: c.Token.GuardianConsent, Minor: c.Token.Minor, Stale: c.Token.Stale}
	}
	if c.Source != "client" && c.Source != "server" {
		t.Fatalf("source %q, want client or server", c.Source)
	}
	got, err := policy.AuthorizeConsent(policy.WriteOf(u), c.Source == "server", v, prev)
	var refusal *policy.Refusal
	switch {
	case errors.As(err, &refusal):
		r := consentWriteResult{Refused: &struct {
			Field  string `json:"field"`
			Reason string `json:"reason"`
			Error  string `json:"error"`
		}{refusal.Field, string(refusal.Reason), refusal.Error()}}
		return r
	case err != nil:
		t.Fatalf("AuthorizeConsent: %v", err)
	}
	return consentWriteResult{Consent: &consentJSON{Purposes: got.Purposes.Names(), CrossBorder: got.CrossBorder,
		Minor: got.Minor, GuardianConsent: got.GuardianConsent}}
}

func mustPurposes(t *testing.T, names []string) policy.Purposes {
	p, err := policy.ParsePurposes(names)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGPCBlocksExportWhateverRemains: Sec-GPC withdraws every purpose
// there is today; a purpose beyond them that survived would still not go
// abroad.
func TestGPCBlocksExportWhateverRemains(t *testing.T) {
	const beyond policy.Purposes = 1 << 4
	c := policy.Consent{Known: true, Purposes: beyond | policy.ThirdPartySharing | policy.Analytics, CrossBorder: true}
	d := policy.Decide(c, false, event.Signals{GPC: true}, 0)
	if d.Drop != "" || d.Purposes != beyond || d.Export {
		t.Errorf("with GPC: %+v, want kept for the purpose beyond alone, not exported", d)
	}
	if d := policy.Decide(c, false, event.Signals{DNT: true}, 0); d.Purposes != beyond|policy.ThirdPartySharing || !d.Export {
		t.Errorf("with DNT: %+v, want third-party sharing kept and exported", d)
	}
}
