package chwriter

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// eventColumns is the insert column list: clickhouse-go needs it explicit on
// 18.16, and naming columns keeps inserts valid when later migrations add
// columns with defaults.
const eventColumns = `message_id, type, event, event_time, received_at, source_id, region,
	subject, user_pseudonym, anonymous_pseudonym, device_pseudonym, advertising_pseudonym,
	ip_truncated, dnt, gpc, context, properties, prop_keys, prop_values,
	kafka_partition, kafka_offset,
	purposes, imei_pseudonym, android_id_pseudonym, mac_pseudonym, country,
	browser, browser_version, os, os_version, device_class`

// migration is one step of the schema, applied once per database, in
// version order (see apply). Its statements run on ClickHouse 18.16 as well
// as current releases (no TTL, no DateTime64, no LowCardinality; ADD COLUMN
// IF NOT EXISTS only where features allow it) and are idempotent, so two
// sinks starting at once may both run them.
type migration struct {
	version uint32
	name    string
	// statements run first, each as it is, on every replica of a cluster
	// (the config's cluster; empty without one), whose tables are the
	// replicated form of the same engine (see engine).
	statements func(db, cluster string) []string
	// columns are then added to the events table, one ALTER each, skipping
	// those already there.
	columns []column
}

// column is one column a migration adds to the events table.
type column struct {
	name string
	// typ is the type as system.columns spells it.
	typ string
	// def is the DEFAULT expression, or empty for the type's own default.
	def string
}

// addStatement is the ALTER that adds c to db.events, with IF NOT EXISTS
// when the server has it (18.16 rejects it as a syntax error).
func (c column) addStatement(db string, f features) string {
	ifNotExists := ""
	if f.addColumnIfNotExists {
		ifNotExists = "IF NOT EXISTS "
	}
	stmt := fmt.Sprintf("ALTER TABLE %s.events ADD COLUMN %s%s %s", db, ifNotExists, c.name, c.typ)
	if c.def != "" {
		stmt += " DEFAULT " + c.def
	}
	return stmt
}

// migrations is the schema's history. Append; never edit a released step.
var migrations = []migration{
	{1, "events table", func(db, cluster string) []string {
		return []string{fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.events (
	message_id String,
	type String,
	event String,
	event_time DateTime,
	received_at DateTime,
	source_id String,
	region String,
	subject String,
	user_pseudonym String,
	anonymous_pseudonym String,
	device_pseudonym String,
	advertising_pseudonym String,
	ip_truncated String,
	dnt UInt8,
	gpc UInt8,
	context String,
	properties String,
	prop_keys Array(String),
	prop_values Array(String),
	kafka_partition Int32,
	kafka_offset Int64
) ENGINE = %s
PARTITION BY toYYYYMM(event_time)
ORDER BY (subject, event_time)%s`, db, engine(cluster, "MergeTree", db, "events"), replicatedSettings(cluster))}
	}, nil},
	// Consent purposes, the country, the generalized user agent and the
	// pseudonyms of the other device identifiers. Rows loaded before it
	// read as empty: no purposes, no country.
	{2, "events: purposes, country, user agent, more device pseudonyms", nil, []column{
		{"purposes", "Array(String)", ""},
		{"imei_pseudonym", "String", "''"},
		{"android_id_pseudonym", "String", "''"},
		{"mac_pseudonym", "String", "''"},
		{"country", "String", "''"},
		{"browser", "String", "''"},
		{"browser_version", "String", "''"},
		{"os", "String", "''"},
		{"os_version", "String", "''"},
		{"device_class", "String", "''"},
	}},
	// The privacy office's audit: every receipt of privacy.receipts (see
	// auditor). Replacing on the receipt's key and status and time, so
	// loading one twice after a crash leaves one row once merged (FINAL to
	// see it so at once).
	{3, "privacy_audit table", func(db, cluster string) []string {
		return []string{fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.privacy_audit (
	request_id String,
	kind String,
	stage String,
	destination String,
	status String,
	operator String,
	reason String,
	subject String,
	requested_at DateTime,
	at DateTime,
	latency_ms Int64,
	rows Int64,
	mutations UInt32,
	destinations Array(String),
	linked_anonymous_ids UInt32,
	error String
) ENGINE = %s
PARTITION BY toYYYYMM(at)
ORDER BY (request_id, kind, stage, destination, subject, status, at)`, db, engine(cluster, "ReplacingMergeTree", db, "privacy_audit"))}
	}, nil},
}

// migrate creates the database and its schema_migrations table if missing,
// applies the migrations newer than the recorded version, and returns the
// version the schema is at. f chooses statements only, never the schema
// itself, so the result is the same on every server version.
func migrate(ctx context.Context, conn driver.Conn, db string, f features) (uint32, error) {
	current, err := schemaVersion(ctx, conn, db)
	if err != nil {
		return 0, err
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		if err := apply(ctx, conn, db, m, f); err != nil {
			return current, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if err := recordMigration(ctx, conn, db, m); err != nil {
			return current, fmt.Errorf("record migration %d: %w", m.version, err)
		}
		current = m.version
	}
	return current, nil
}

// schemaVersion creates the database and its schema_migrations table if
// missing and returns the version recorded there. schema_migrations is a
// plain MergeTree, one per server: on a cluster each replica records its
// own.
func schemaVersion(ctx context.Context, conn driver.Conn, db string) (uint32, error) {
	if err := ensureDatabase(ctx, conn, db); err != nil {
		return 0, err
	}
	if err := conn.Exec(ctx, createMigrationsTableStatement(db)); err != nil {
		return 0, fmt.Errorf("schema migrations table: %w", err)
	}
	var current uint32
	if err := conn.QueryRow(ctx, schemaVersionQuery(db)).Scan(&current); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return current, nil
}

// migrateCluster is migrate on every replica of a cluster, one migration
// at a time on all of them: a replica whose table is created after
// another replica's columns were added would not match the table's
// metadata in ZooKeeper. A migration's statements run on each replica
// behind it; its columns are added once (the ALTER of a replicated table
// reaches every replica through ZooKeeper), then awaited on each.
func migrateCluster(ctx context.Context, rs []replica, db, cluster string, f features) (uint32, error) {
	versions := make([]uint32, len(rs))
	current := uint32(1<<32 - 1)
	for i, r := range rs {
		v, err := schemaVersion(ctx, r.conn, db)
		if err != nil {
			return 0, fmt.Errorf("replica %s: %w", r.addr, err)
		}
		versions[i], current = v, min(current, v)
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		err := eachReplica(rs, func(r replica) error { return applyStatements(ctx, r.conn, db, cluster, m) })
		if err == nil {
			err = applyColumns(ctx, rs[0].conn, db, m, f)
		}
		if err == nil && len(m.columns) > 0 {
			err = eachReplica(rs, func(r replica) error { return awaitColumns(ctx, r.conn, db, m.columns) })
		}
		if err != nil {
			return current, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		for i, r := range rs {
			if versions[i] >= m.version {
				continue
			}
			if err := recordMigration(ctx, r.conn, db, m); err != nil {
				return current, fmt.Errorf("record migration %d on replica %s: %w", m.version, r.addr, err)
			}
			versions[i] = m.version
		}
		current = m.version
	}
	return current, eachReplica(rs, func(r replica) error { return ensureDistributed(ctx, r.conn, db, cluster) })
}

// awaitColumns waits until the events table of one replica has columns,
// which an ALTER on another replica added.
func awaitColumns(ctx context.Context, conn driver.Conn, db string, columns []column) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for polls := 0; ; polls++ {
		have, err := eventsColumns(ctx, conn, db)
		if err != nil {
			return err
		}
		missing := ""
		for _, c := range columns {
			if have[c.name] != c.typ {
				missing = c.name
				break
			}
		}
		if missing == "" {
			return nil
		}
		if err := mutationPolls.Wait(ctx, polls); err != nil {
			return fmt.Errorf("column %s.events.%s not replicated here within a minute: %w", db, missing, err)
		}
	}
}

// ensureDistributed creates db.events_all over the cluster with the events
// table's columns, and makes it again when a migration has added columns
// since (a Distributed table holds no data of its own).
func ensureDistributed(ctx context.Context, conn driver.Conn, db, cluster string) error {
	var same uint8
	// Sorted: 18.16's system.columns has no position, and a Distributed
	// table reads columns by name.
	err := conn.QueryRow(ctx, `SELECT arraySort(groupArray(concat(name, ' ', type))) = (SELECT arraySort(groupArray(concat(name, ' ', type))) FROM system.columns WHERE database = ? AND table = 'events')
		FROM system.columns WHERE database = ? AND table = '`+distributedTable+`'`, db, db).Scan(&same)
	if err != nil {
		return fmt.Errorf("compare %s.%s with %s.events: %w", db, distributedTable, db, err)
	}
	if same == 1 {
		return nil
	}
	if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+db+"."+distributedTable); err != nil {
		return fmt.Errorf("drop the outdated %s.%s: %w", db, distributedTable, err)
	}
	if err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s AS %s.events ENGINE = Distributed(%s, %s, events)", db, distributedTable, db, cluster, db)); err != nil {
		return fmt.Errorf("create %s.%s: %w", db, distributedTable, err)
	}
	return nil
}

// ensureDatabase creates db only if it is missing. The sink's user need not
// be allowed to create databases (an administrator creates them: see
// deployments/clickhouse): current releases check the CREATE DATABASE grant
// even for CREATE DATABASE IF NOT EXISTS on a database that exists. A user
// sees its own databases in system.databases, on 18.16 as on current
// releases, where every user may read that table.
func ensureDatabase(ctx context.Context, conn driver.Conn, db string) error {
	var n uint64
	query, args := databaseExistsQuery(db)
	if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		return fmt.Errorf("look for database %s: %w", db, err)
	}
	if n > 0 {
		return nil
	}
	if err := conn.Exec(ctx, createDatabaseStatement(db)); err != nil {
		return fmt.Errorf("create database %s (or have an administrator create it: deployments/clickhouse): %w", db, err)
	}
	return nil
}

// apply runs m's statements, then adds each of its columns the events
// table lacks. A column that is there already with the same type counts as
// added, including when another sink added it between the look and the
// ALTER; one there with another type is an error.
func apply(ctx context.Context, conn driver.Conn, db string, m migration, f features) error {
	if err := applyStatements(ctx, conn, db, "", m); err != nil {
		return err
	}
	return applyColumns(ctx, conn, db, m, f)
}

// applyStatements runs m's statements for a server of cluster (or none).
func applyStatements(ctx context.Context, conn driver.Conn, db, cluster string, m migration) error {
	if m.statements == nil {
		return nil
	}
	for _, stmt := range m.statements(db, cluster) {
		if err := conn.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// applyColumns adds each of m's columns the events table lacks (see apply).
func applyColumns(ctx context.Context, conn driver.Conn, db string, m migration, f features) error {
	if len(m.columns) == 0 {
		return nil
	}
	have, err := eventsColumns(ctx, conn, db)
	if err != nil {
		return err
	}
	added := false
	for _, c := range m.columns {
		if typ, ok := have[c.name]; ok {
			if typ != c.typ {
				return columnTypeError(db, c, typ)
			}
			continue
		}
		err := conn.Exec(ctx, c.addStatement(db, f))
		switch {
		case err == nil:
			added = true
		case f.addColumnIfNotExists:
			return err
		default:
			// 18.16: another sink may have added it since we looked.
			if now, lerr := eventsColumns(ctx, conn, db); lerr == nil && now[c.name] == c.typ {
				continue
			}
			return err
		}
	}
	if !added || !f.addColumnIfNotExists {
		return nil
	}
	// IF NOT EXISTS also succeeds when another sink has just added a column
	// of that name with another type: look at what is there now.
	now, err := eventsColumns(ctx, conn, db)
	if err != nil {
		return err
	}
	for _, c := range m.columns {
		if now[c.name] != c.typ {
			return columnTypeError(db, c, now[c.name])
		}
	}
	return nil
}

func columnTypeError(db string, c column, have string) error {
	return fmt.Errorf("column %s.events.%s is %s, want %s", db, c.name, have, c.typ)
}

// eventsColumns maps the events table's column names to their types.
func eventsColumns(ctx context.Context, conn driver.Conn, db string) (map[string]string, error) {
	query, args := eventsColumnsQuery(db)
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s.events columns: %w", db, err)
	}
	defer rows.Close()
	have := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("read %s.events columns: %w", db, err)
		}
		have[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s.events columns: %w", db, err)
	}
	return have, nil
}

// recordMigration inserts through a batch: an INSERT ... VALUES sent with
// Exec waits forever for a data block on 18.16.
func recordMigration(ctx context.Context, conn driver.Conn, db string, m migration) error {
	batch, err := conn.PrepareBatch(ctx, migrationInsert(db))
	if err != nil {
		return err
	}
	if err := batch.Append(migrationValues(m, time.Now().UTC())...); err != nil {
		_ = batch.Abort()
		return err
	}
	return batch.Send()
}

// checkColumns refuses a table that lacks a column the sink inserts: CREATE
// TABLE IF NOT EXISTS keeps a table another version made, and every insert
// into it would fail, batch after batch, while the sink looked healthy.
func checkColumns(ctx context.Context, conn driver.Conn, db string) error {
	have, err := eventsColumns(ctx, conn, db)
	if err != nil {
		return err
	}
	var missing []string
	for _, col := range strings.Split(eventColumns, ",") {
		if col = strings.TrimSpace(col); have[col] == "" {
			missing = append(missing, col)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("table %s.events lacks columns %s: it was made by another version of the sink; migrate or rename it", db, strings.Join(missing, ", "))
	}
	return nil
}
