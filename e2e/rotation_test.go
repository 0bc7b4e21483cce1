package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/collector/ingest"
	"github.com/consentflow/consentflow/collector/privacyapi"
	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/keyring"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/internal/testenv"
	"github.com/consentflow/consentflow/sink/chwriter"
)

// TestErasureAcrossKeyRotation: a person's rows are written under k1 and
// x1, both keys are rotated (k2 and x2 promoted, the old ones moved to
// retired), more rows come under the new keys, then the person is
// erased: no row under any key is left in either database. The negative
// control promotes the new keys without keeping the old ones: the
// erasure still says done, and the rows from before the rotation
// survive, which is what the retired keys are for.
func TestErasureAcrossKeyRotation(t *testing.T) {
	for _, keepRetired := range []bool{true, false} {
		t.Run(fmt.Sprintf("retired=%v", keepRetired), func(t *testing.T) { eraseAcrossRotation(t, keepRetired) })
	}
}

func eraseAcrossRotation(t *testing.T, keepRetired bool) {
	ctx := testenv.Context(t, 3*time.Minute)
	rc := newRunConfigs(t, "rotation")
	chAddr := testenv.ClickHouseAddr(t)
	log := quietLog()
	ccfg, ecfg, scfg, xcfg := rc.ccfg, rc.ecfg, rc.scfg, rc.xcfg
	privacyOn(t, &ccfg, chAddr, rc.database)
	scfg.Erasure.Window, xcfg.Erasure.Window = 500*time.Millisecond, 500*time.Millisecond
	startOn(t, ctx, prometheus.NewRegistry(), func(reg prometheus.Registerer) (obs.Component, error) { return chwriter.New(scfg, reg, log) })
	startOn(t, ctx, prometheus.NewRegistry(), func(reg prometheus.Registerer) (obs.Component, error) { return chwriter.New(xcfg, reg, log) })
	conn := testenv.ClickHouseDB(t, chAddr, rc.database)

	user, device := "rotated-"+rc.run, "rotated-device-"+rc.run
	sent := 0
	// phase starts the enricher and the collector with the configs as they
	// are, sends the person's events, waits for them in both databases and
	// stops both services again.
	phase := func(name string) {
		enricher := startOn(t, ctx, prometheus.NewRegistry(), func(reg prometheus.Registerer) (obs.Component, error) { return pipeline.New(ecfg, reg, log) })
		collector := startOn(t, ctx, prometheus.NewRegistry(), func(reg prometheus.Registerer) (obs.Component, error) { return ingest.New(ccfg, reg, log) }).(*ingest.Server)
		base := "http://" + collector.Addr()
		if name == "before" {
			c := map[string]any{"userId": user, "purposes": map[string]bool{"analytics": true}, "crossBorder": true,
				"timestamp": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)}
			if resp := postAs(t, serverKey, base+"/v1/consent", c); !resp.Success {
				t.Fatalf("consent: %+v", resp)
			}
		}
		var batch []map[string]any
		for i := range 3 {
			batch = append(batch, map[string]any{"type": "track", "event": "Product Viewed", "messageId": fmt.Sprintf("%s-%s-%d", rc.run, name, i),
				"userId": user, "anonymousId": device, "timestamp": time.Now().UTC().Format(time.RFC3339Nano)})
		}
		if resp := post(t, base+"/v1/batch", map[string]any{"batch": batch}); !resp.Success || len(resp.Rejected) != 0 {
			t.Fatalf("batch: %+v", resp)
		}
		sent += len(batch)
		waitRows(t, ctx, conn, rc.database, sent)
		waitRows(t, ctx, conn, rc.database+"_intl", sent)
		for _, c := range []obs.Component{collector, enricher} {
			if err := c.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := config.Check(&ccfg); err != nil { // reads the token and key files
		t.Fatal(err)
	}
	phase("before")

	// The rotation: new keys in service; the old ones retired, or dropped.
	dir := t.TempDir()
	rotate := func(k *keyring.Config, newID, oldID, oldFile string) {
		file := filepath.Join(dir, newID+".key")
		if err := os.WriteFile(file, []byte(newID+"-rotation-test-key-0123456789abcdef0123\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		*k = keyring.Config{KeyID: newID, KeyFile: file}
		if keepRetired {
			k.Retired = []keyring.RetiredKey{{KeyID: oldID, KeyFile: oldFile}}
		}
	}
	rotate(&ecfg.Pseudonym, "k2", "k1", "../configs/dev-pseudonym.key")
	rotate(&ecfg.Export.Pseudonym, "x2", "x1", "../configs/dev-export.key")
	ccfg.Privacy.Pseudonym, ccfg.Privacy.Export.Abroad.Pseudonym = ecfg.Pseudonym, ecfg.Export.Pseudonym
	for _, c := range []config.Validator{&ccfg, &ecfg} {
		if err := config.Check(c); err != nil { // reads the new key files
			t.Fatal(err)
		}
	}
	phase("after")

	// The erasure, on the rotated collector and enricher.
	startOn(t, ctx, prometheus.NewRegistry(), func(reg prometheus.Registerer) (obs.Component, error) { return pipeline.New(ecfg, reg, log) })
	collector := startOn(t, ctx, prometheus.NewRegistry(), func(reg prometheus.Registerer) (obs.Component, error) { return ingest.New(ccfg, reg, log) }).(*ingest.Server)
	op := startPrivacyAPI(t, ctx, &ccfg, collector, log)
	st, _ := op.waitDone(t, ctx, op.erase(t, ctx, map[string]string{"userId": user, "reason": "user_request"}))
	if st.Status != "done" {
		t.Fatalf("erasure status %+v", st)
	}

	k1, x1 := devKeyring(t, "k1", "../configs/dev-pseudonym.key"), devKeyring(t, "x1", "../configs/dev-export.key")
	k2, err := ecfg.Pseudonym.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	x2, err := ecfg.Export.Pseudonym.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range []struct {
		name     string
		old, cur *policy.Keyring
	}{{rc.database, k1, k2}, {rc.database + "_intl", x1, x2}} {
		before := subjectRows(t, ctx, conn, db.name, db.old.Pseudonyms(policy.KindUser, user), db.old.Pseudonyms(policy.KindAnonymous, device))
		after := subjectRows(t, ctx, conn, db.name, db.cur.Pseudonyms(policy.KindUser, user), db.cur.Pseudonyms(policy.KindAnonymous, device))
		switch {
		case after != 0:
			t.Errorf("%s keeps %d rows written under the key in service after the erasure", db.name, after)
		case keepRetired && before != 0:
			t.Errorf("%s keeps %d rows written before the rotation, with the old key retired", db.name, before)
		case !keepRetired && before != 3:
			t.Errorf("without the retired key, %s keeps %d rows from before the rotation, want all 3 (the control shows the check sees them)", db.name, before)
		}
	}
}

// quietLog discards the services' logs, or shows warnings with -v.
func quietLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startPrivacyAPI serves the collector's privacy admin API on its own
// listener, as the collector's main wires it, and returns an operator
// client of the development operator.
func startPrivacyAPI(t *testing.T, ctx context.Context, ccfg *ingest.Config, collector *ingest.Server, log *slog.Logger) operatorClient {
	t.Helper()
	api := startOn(t, ctx, prometheus.NewRegistry(), func(reg prometheus.Registerer) (obs.Component, error) {
		return privacyapi.NewAPI(*ccfg, privacyapi.Deps{Produce: collector.Produce, Consent: collector.ConsentStore(), WaitConsent: collector.WaitConsent}, reg, log)
	}).(*privacyapi.API)
	privacy, err := privacyapi.New(ccfg.Privacy, api.Routes(), log)
	if err != nil {
		t.Fatal(err)
	}
	if err := privacy.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = privacy.Shutdown(context.Background()) })
	token, err := os.ReadFile("../configs/dev-operator.token")
	if err != nil {
		t.Fatal(err)
	}
	return operatorClient{base: "http://" + privacy.Addr(), token: string(bytes.TrimSpace(token))}
}
