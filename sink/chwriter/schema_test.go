package chwriter

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/testenv"
)

// newColumns are the columns migration 2 adds, as the insert names them.
var newColumns = []string{"purposes", "imei_pseudonym", "android_id_pseudonym", "mac_pseudonym", "country",
	"browser", "browser_version", "os", "os_version", "device_class"}

// TestEveryInsertedColumnIsMigrated checks the insert's column list and the
// migrations agree on the columns added after the first table.
func TestEveryInsertedColumnIsMigrated(t *testing.T) {
	var added []string
	for _, m := range migrations {
		for _, c := range m.columns {
			added = append(added, c.name)
			if !strings.Contains(eventColumns, c.name) {
				t.Errorf("migration %d adds %s, which the insert does not write", m.version, c.name)
			}
		}
	}
	if !slices.Equal(added, newColumns) {
		t.Errorf("migrations add %q, want %q", added, newColumns)
	}
	want := []string{
		"ALTER TABLE db.events ADD COLUMN purposes Array(String)",
		"ALTER TABLE db.events ADD COLUMN country String DEFAULT ''",
	}
	var got []string
	for _, c := range migrations[1].columns {
		got = append(got, c.addStatement("db", features{}))
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("migration 2 statements %q lack %q", got, w)
		}
	}
}

// v1Columns is what the sink inserted at schema version 1.
const v1Columns = `message_id, type, event, event_time, received_at, source_id, region,
	subject, user_pseudonym, anonymous_pseudonym, device_pseudonym, advertising_pseudonym,
	ip_truncated, dnt, gpc, context, properties, prop_keys, prop_values,
	kafka_partition, kafka_offset`

// TestUpgradeFromVersion1 starts the sink on a database a version-1 sink
// made and loaded: it must add the new columns once, record version 2, keep
// the old rows (reading the new columns as empty) and load new events.
func TestUpgradeFromVersion1(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	db := f.cfg.Database
	for _, stmt := range []string{
		"CREATE DATABASE IF NOT EXISTS " + db,
		"CREATE TABLE " + db + ".schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = TinyLog",
	} {
		if err := f.conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := apply(ctx, f.conn, db, migrations[0], features{}); err != nil {
		t.Fatal(err)
	}
	if err := recordMigration(ctx, f.conn, db, migrations[0]); err != nil {
		t.Fatal(err)
	}
	batch, err := f.conn.PrepareBatch(ctx, "INSERT INTO "+db+".events ("+v1Columns+")")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	if err := batch.Append("old", "track", "Viewed", at, at, "web", "cn", "k1.old", "", "", "", "",
		"", uint8(0), uint8(0), "", "", []string{}, []string{}, int32(0), int64(-1)); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var versions []uint32
	rows, err := f.conn.Query(ctx, "SELECT version FROM "+db+".schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	rows.Close()
	if !slices.Equal(versions, []uint32{1, 2, 3}) {
		t.Errorf("schema_migrations versions %v, want [1 2 3]", versions)
	}
	have, err := eventsColumns(ctx, f.conn, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range migrations[1].columns {
		if have[c.name] != c.typ {
			t.Errorf("column %s is %q, want %q", c.name, have[c.name], c.typ)
		}
	}

	var purposes []string
	var country, browser, imei string
	if err := f.conn.QueryRow(ctx, "SELECT purposes, country, browser, imei_pseudonym FROM "+db+".events WHERE message_id = 'old'").
		Scan(&purposes, &country, &browser, &imei); err != nil {
		t.Fatal(err)
	}
	if len(purposes) != 0 || country != "" || browser != "" || imei != "" {
		t.Errorf("version-1 row reads purposes %q country %q browser %q imei %q, want all empty", purposes, country, browser, imei)
	}

	r := f.clean("new")
	var c event.Clean
	_ = json.Unmarshal(r.Value, &c)
	c.Purposes, c.Country = []string{"analytics"}, "DE"
	r.Value, _ = json.Marshal(c)
	testenv.Produce(t, ctx, f.brokers, r)
	got := f.waitRows(t, ctx, 2)
	if got["old"] != 1 || got["new"] != 1 {
		t.Errorf("rows after upgrade: %v", got)
	}
	if err := f.conn.QueryRow(ctx, "SELECT purposes, country FROM "+db+".events WHERE message_id = 'new'").Scan(&purposes, &country); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(purposes, []string{"analytics"}) || country != "DE" {
		t.Errorf("row loaded after upgrade: purposes %q country %q", purposes, country)
	}
}

// TestColumnMigrationConcurrent applies migration 2 from several sinks at
// once, as replicas starting together do: each must succeed though only one
// ALTER per column can.
func TestColumnMigrationConcurrent(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	db := f.cfg.Database
	if err := f.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		t.Fatal(err)
	}
	if err := apply(ctx, f.conn, db, migrations[0], features{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = apply(ctx, f.conn, db, migrations[1], features{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("sink %d: %v", i, err)
		}
	}
	if err := checkColumns(ctx, f.conn, db); err != nil {
		t.Error(err)
	}
}

// TestMigrationRefusesAColumnOfAnotherType checks migration 2 does not take
// a column of the same name but another type for its own.
func TestMigrationRefusesAColumnOfAnotherType(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	db := f.cfg.Database
	if err := f.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		t.Fatal(err)
	}
	if err := apply(ctx, f.conn, db, migrations[0], features{}); err != nil {
		t.Fatal(err)
	}
	if err := f.conn.Exec(ctx, "ALTER TABLE "+db+".events ADD COLUMN country UInt16"); err != nil {
		t.Fatal(err)
	}
	err := f.w.Start(ctx)
	if want := fmt.Sprintf("column %s.events.country is UInt16, want String", db); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Start with country UInt16: %v, want an error containing %q", err, want)
	}
}

// TestLoadsConsentAndDeviceFields checks every field the enricher added to
// Clean lands in its column, and that a Clean without them stores empties.
func TestLoadsConsentAndDeviceFields(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	full := f.clean("full")
	var c event.Clean
	_ = json.Unmarshal(full.Value, &c)
	c.Purposes = []string{"analytics", "personalization"}
	c.IMEI, c.AndroidID, c.MAC = "k1.imei", "k1.android", "k1.mac"
	c.Country = "CN"
	c.Browser, c.BrowserVersion = "Chrome", "131"
	c.OS, c.OSVersion = "Android", "14"
	c.DeviceClass = "mobile"
	full.Value, _ = json.Marshal(c)
	testenv.Produce(t, ctx, f.brokers, full, f.clean("bare"))
	f.waitRows(t, ctx, 2)

	type got struct {
		Purposes                                                          []string
		IMEI, AndroidID, MAC, Country, Browser, BrowserVersion, OS, OSVer string
		DeviceClass                                                       string
	}
	read := func(id string) got {
		t.Helper()
		var g got
		err := f.conn.QueryRow(ctx, "SELECT "+strings.Join(newColumns, ", ")+" FROM "+f.cfg.Database+".events WHERE message_id = ?", id).
			Scan(&g.Purposes, &g.IMEI, &g.AndroidID, &g.MAC, &g.Country, &g.Browser, &g.BrowserVersion, &g.OS, &g.OSVer, &g.DeviceClass)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	want := got{[]string{"analytics", "personalization"}, "k1.imei", "k1.android", "k1.mac", "CN", "Chrome", "131", "Android", "14", "mobile"}
	if g := read("full"); fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("row full:\ngot  %+v\nwant %+v", g, want)
	}
	if g := read("bare"); fmt.Sprint(g) != fmt.Sprint(got{Purposes: []string{}}) {
		t.Errorf("row without the new fields: %+v, want all empty", g)
	}
}

// TestMigrateConcurrent migrates new databases from several sinks at once,
// as the instances of one destination starting together do: every one
// must start, with the schema at the latest version. schema_migrations
// was a TinyLog table, which 18.16 does not lock: two inserts at once
// failed ("File not found: .../schema_migrations/tmp_sizes.json") and
// the sink with them.
func TestMigrateConcurrent(t *testing.T) {
	chAddr := testenv.ClickHouseAddr(t)
	ctx := testenv.Context(t, 2*time.Minute)
	latest := migrations[len(migrations)-1].version
	for round := range 5 {
		db := testenv.Name(t, fmt.Sprintf("analytics%d", round))
		conn := testenv.ClickHouseDB(t, chAddr, db)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var v uint32
				if v, errs[i] = migrate(ctx, conn, db, features{}); errs[i] == nil && v != latest {
					errs[i] = fmt.Errorf("version %d, want %d", v, latest)
				}
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, sink %d: %v", round, i, err)
			}
		}
		// The next start reads the version all of them recorded.
		if v, err := migrate(ctx, conn, db, features{}); err != nil || v != latest {
			t.Errorf("round %d, the next start: version %d, %v; want %d", round, v, err, latest)
		}
	}
}
