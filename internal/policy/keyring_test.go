package policy_test

import (
	"slices"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/policy"
)

// TestKeyringRetired: a retired key pseudonymizes nothing new, whatever
// the time, yet erasure and export (Pseudonyms) still compute its
// pseudonyms, so rows written before a rotation are found after it.
func TestKeyringRetired(t *testing.T) {
	old := policy.Key{ID: "k1", Secret: testKey, Retired: true}
	current := policy.Key{ID: "k2", Secret: rotatedKey}
	ring, err := policy.NewKeyring(current, old)
	if err != nil {
		t.Fatal(err)
	}
	oldRing, err := policy.NewKeyring(policy.Key{ID: "k1", Secret: testKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{{}, rotationTime.AddDate(-5, 0, 0), time.Now()} {
		if got := ring.At(at).Pseudonym(policy.KindUser, "u"); got[:3] != "k2." {
			t.Errorf("At(%v) pseudonymized under %q, want the key in service k2", at, got)
		}
	}
	all := ring.Pseudonyms(policy.KindUser, "u")
	if want := oldRing.At(time.Time{}).Pseudonym(policy.KindUser, "u"); !slices.Contains(all, want) || len(all) != 2 {
		t.Errorf("Pseudonyms = %v, want the retired key's %s and the current key's", all, want)
	}
	if ids := ring.KeyIDs(); !slices.Equal(ids, []string{"k1", "k2"}) {
		t.Errorf("KeyIDs = %v, want [k1 k2]", ids)
	}
	if _, err := policy.NewKeyring(old); err == nil {
		t.Error("a keyring of retired keys only was accepted")
	}
	if _, err := policy.NewKeyring(current, policy.Key{ID: "k2", Secret: testKey, Retired: true}); err == nil {
		t.Error("a retired key with the current key's id was accepted")
	}
}
