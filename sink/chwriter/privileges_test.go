package chwriter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/testenv"
)

// accessDenied reports whether err is ClickHouse refusing the user:
// DATABASE_ACCESS_DENIED (291) on 18.16, ACCESS_DENIED (497) on releases
// with SQL grants.
func accessDenied(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && (ex.Code == 291 || ex.Code == 497)
}

// TestSinkUserIsConfinedToItsDatabase checks that the user the sink logs
// in as in every test (the shipped users.d/sink.xml, for the test's
// database) is confined to its database on the server: it runs the sink
// fine there, and cannot read, write, alter or drop another test's
// database, nor see its tables in the system tables, nor create one.
func TestSinkUserIsConfinedToItsDatabase(t *testing.T) {
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	if err := f.w.Start(ctx); err != nil { // creates and migrates its schema as that user
		t.Fatal(err)
	}
	testenv.Produce(t, ctx, f.brokers, f.clean("mine"))
	f.waitRows(t, ctx, 1)

	// Another test's database, with its own user, schema and a row.
	chAddr := f.cfg.ClickHouse.Addr[0]
	other := testenv.Name(t, "analytics")
	otherUser := testenv.ClickHouseSinkUser(t, chAddr, other)
	testenv.ClickHouseDB(t, chAddr, other+"_new") // dropped at the end should the CREATE below succeed
	otherConn := open(t, chAddr, otherUser)
	if _, err := migrate(ctx, otherConn, other, features{}); err != nil {
		t.Fatalf("the other user in its own database: %v", err)
	}
	batch, err := otherConn.PrepareBatch(ctx, "INSERT INTO "+other+".schema_migrations (version, name, applied_at)")
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append(uint32(99), "theirs", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := f.conn.QueryRow(ctx, "SELECT count() FROM "+other+".events").Scan(&n); err != nil {
		t.Fatalf("control: the default user cannot read %s.events: %v", other, err)
	}

	mineUser := testenv.ClickHouseUser{Name: f.cfg.ClickHouse.Username, Password: f.cfg.ClickHouse.Password.Reveal()}
	mine := open(t, chAddr, mineUser)
	if err := mine.QueryRow(ctx, "SELECT count() FROM "+f.cfg.Database+".events").Scan(&n); err != nil || n != 1 {
		t.Fatalf("control: the sink's user reads %d rows of its own events (%v), want 1", n, err)
	}

	for _, stmt := range []string{
		"SELECT count() FROM " + other + ".events",
		"SELECT version FROM " + other + ".schema_migrations",
		"CREATE TABLE " + other + ".intruder (x UInt8) ENGINE = TinyLog",
		"ALTER TABLE " + other + ".events ADD COLUMN intruder String",
		"ALTER TABLE " + other + ".events DROP PARTITION 202611",
		"ALTER TABLE " + other + ".events DELETE WHERE 1",
		"DROP TABLE " + other + ".events",
		"DROP DATABASE " + other,
		"CREATE DATABASE " + other + "_new",
	} {
		if err := mine.Exec(ctx, stmt); !accessDenied(err) {
			t.Errorf("the sink's user, %s: %v; want access denied", stmt, err)
		}
	}
	if _, err := mine.PrepareBatch(ctx, "INSERT INTO "+other+".events ("+eventColumns+")"); !accessDenied(err) {
		t.Errorf("the sink's user, INSERT INTO %s.events: %v; want access denied", other, err)
	}
	// The other way round too.
	if err := otherConn.QueryRow(ctx, "SELECT count() FROM "+f.cfg.Database+".events").Scan(&n); !accessDenied(err) {
		t.Errorf("the other user reads %s.events: %v; want access denied", f.cfg.Database, err)
	}
	// The system tables, which the sink reads, show it its own tables only.
	for _, table := range []string{"databases", "tables", "columns", "parts"} {
		col := "database"
		if table == "databases" {
			col = "name"
		}
		if err := mine.QueryRow(ctx, "SELECT count() FROM system."+table+" WHERE "+col+" = ?", other).Scan(&n); err != nil || n != 0 {
			t.Errorf("the sink's user sees %d rows of system.%s for %s (%v), want none", n, table, other, err)
		}
	}
	// Nothing reached the other database.
	if err := f.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ?", other).Scan(&n); err != nil || n != 3 {
		t.Errorf("%s holds %d tables (%v), want its 3", other, n, err)
	}

	// A sink pointed at the other database with this user does not start.
	cfg := f.cfg
	cfg.Database, cfg.GroupID = other, testenv.Name(t, "sink")
	w, err := New(cfg, prometheus.NewRegistry(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	if err := w.Start(ctx); !accessDenied(err) {
		t.Errorf("sink started on %s with the user of %s: %v; want access denied", other, f.cfg.Database, err)
	}

	// And the password is checked: 193 WRONG_PASSWORD on 18.16, 516
	// AUTHENTICATION_FAILED on current releases.
	err = open(t, chAddr, testenv.ClickHouseUser{Name: mineUser.Name, Password: "wrong"}).Ping(ctx)
	if ex := (*clickhouse.Exception)(nil); !errors.As(err, &ex) || (ex.Code != 193 && ex.Code != 516) {
		t.Errorf("the sink's user with a wrong password: %v; want refused", err)
	}
}

// open connects to addr as u.
func open(t *testing.T, addr string, u testenv.ClickHouseUser) driver.Conn {
	t.Helper()
	cfg := chx.Config{Addr: []string{addr}}
	u.Apply(&cfg)
	conn, err := chx.Open(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestMigrateCreatesAMissingDatabase checks that migrate still creates its
// database when it is missing and the user may (here the default user):
// it looks first, and runs CREATE DATABASE only then, so that a user
// without that right starts on a database an administrator made.
func TestMigrateCreatesAMissingDatabase(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	ctx := testenv.Context(t, time.Minute)
	db := testenv.Name(t, "analytics")
	conn := testenv.ClickHouseDB(t, addr, db)
	v, err := migrate(ctx, conn, db, features{})
	if err != nil || v != migrations[len(migrations)-1].version {
		t.Fatalf("migrate on a missing database: version %d, %v", v, err)
	}
	if err := checkColumns(ctx, conn, db); err != nil {
		t.Error(err)
	}
}
