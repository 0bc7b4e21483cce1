package chwriter

// Every statement the sink sends to ClickHouse is built in this file or in
// schema.go (the migrations), and nowhere else (TestSQLBuiltInOnePlace),
// so TestStatementsOnCurrentEngine can run each of them on a current
// ClickHouse engine as well as the 18.16 server the other tests use. A
// builder that takes arguments returns them as clickhouse-go binds them.

import (
	"fmt"
	"strings"
	"time"

	"github.com/consentflow/consentflow/internal/event"
)

// versionQuery reads the server's version (detectServer).
const versionQuery = "SELECT version()"

// databaseExistsQuery counts the databases named db (ensureDatabase).
func databaseExistsQuery(db string) (string, []any) {
	return "SELECT count() FROM system.databases WHERE name = ?", []any{db}
}

// clusterServersQuery lists the servers of a cluster, by shard and
// replica (discoverReplicas).
func clusterServersQuery(cluster string) (string, []any) {
	return "SELECT shard_num, host_name, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", []any{cluster}
}

func createDatabaseStatement(db string) string { return "CREATE DATABASE IF NOT EXISTS " + db }

// createMigrationsTableStatement is a MergeTree, not a Log engine: the
// instances of a destination start together, and 18.16's TinyLog breaks
// under inserts at once (two sinks recording the same migration), failing
// the start.
func createMigrationsTableStatement(db string) string {
	return "CREATE TABLE IF NOT EXISTS " + db + ".schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree() ORDER BY version"
}

// schemaVersionQuery is the highest migration recorded (0 when none).
func schemaVersionQuery(db string) string {
	return "SELECT max(version) FROM " + db + ".schema_migrations"
}

// migrationInsert records a migration; migrationValues are its row.
func migrationInsert(db string) string {
	return "INSERT INTO " + db + ".schema_migrations (version, name, applied_at)"
}

func migrationValues(m migration, at time.Time) []any { return []any{m.version, m.name, at} }

// eventsColumnsQuery lists the events table's columns and their types.
func eventsColumnsQuery(db string) (string, []any) {
	return "SELECT name, type FROM system.columns WHERE database = ? AND table = 'events'", []any{db}
}

// eventsInsert is the loader's insert, of the columns eachEventColumn lays
// out.
func eventsInsert(db string) string { return "INSERT INTO " + db + ".events (" + eventColumns + ")" }

// noEventsTable are the codes storedOffsetsQuery fails with when there is
// no events table or database yet: UNKNOWN_TABLE, UNKNOWN_DATABASE.
var noEventsTable = []int32{60, 81}

// storedOffsetsQuery is the highest Kafka offset stored per partition.
func storedOffsetsQuery(db string) string {
	return "SELECT kafka_partition, max(kafka_offset) FROM " + db + ".events GROUP BY kafka_partition"
}

// notStoredQuery finds which of rows the events table holds, by Kafka
// partition and offset. The event_time bounds let ClickHouse skip the
// months (partitions) the rows cannot be in. Integers only: nothing from
// the records is spliced into the SQL.
func notStoredQuery(db string, rows []*row) string {
	type span struct{ lo, hi int64 }
	spans := map[int32]*span{}
	var order []int32
	first, last := rows[0].clean.Timestamp, rows[0].clean.Timestamp
	for _, r := range rows {
		if s, ok := spans[r.partition]; ok {
			s.lo, s.hi = min(s.lo, r.offset), max(s.hi, r.offset)
		} else {
			spans[r.partition] = &span{r.offset, r.offset}
			order = append(order, r.partition)
		}
		if t := r.clean.Timestamp; t.Before(first) {
			first = t
		} else if t.After(last) {
			last = t
		}
	}
	conds := make([]string, 0, len(order))
	for _, p := range order {
		conds = append(conds, fmt.Sprintf("(kafka_partition = %d AND kafka_offset BETWEEN %d AND %d)", p, spans[p].lo, spans[p].hi))
	}
	return fmt.Sprintf("SELECT kafka_partition, kafka_offset FROM %s.events WHERE event_time BETWEEN toDateTime(%d) AND toDateTime(%d) AND (%s)",
		db, first.Unix(), last.Unix(), strings.Join(conds, " OR "))
}

// partitionsQuery lists the events table's partitions (retention).
func partitionsQuery(db string) (string, []any) {
	return "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = 'events' AND active", []any{db}
}

// dropPartitionStatement drops a month (YYYYMM) of events.
func dropPartitionStatement(db string, month int) string {
	return fmt.Sprintf("ALTER TABLE %s.events DROP PARTITION %d", db, month)
}

// subjectsCountQuery counts the subjects' rows by pseudonym triple: what an
// erasure finds before it deletes, and what verifies it after.
func subjectsCountQuery(db string, s *subjects) (string, []any) {
	where, args := s.where()
	return "SELECT subject, user_pseudonym, anonymous_pseudonym, count() FROM " + db + ".events WHERE " + where +
		" GROUP BY subject, user_pseudonym, anonymous_pseudonym", args
}

// deleteStatement is the erasure's mutation.
func deleteStatement(db string, s *subjects) (string, []any) {
	where, args := s.where()
	return "ALTER TABLE " + db + ".events DELETE WHERE " + where, args
}

// pendingMutationsQuery counts the events table's unfinished mutations.
func pendingMutationsQuery(db string) (string, []any) {
	return "SELECT count() FROM system.mutations WHERE database = ? AND table = 'events' AND is_done = 0", []any{db}
}

// auditInsert is the audit loader's insert; auditValues are a receipt's
// row.
func auditInsert(db string) string {
	return "INSERT INTO " + db + ".privacy_audit (request_id, kind, stage, destination, status, operator, reason, subject, requested_at, at, latency_ms, rows, mutations, destinations, linked_anonymous_ids, error)"
}

// auditValues are r's row of privacy_audit. A receipt without a request
// time (or one out of DateTime's range) counts from its own time.
func auditValues(r *event.Receipt) []any {
	requested := r.RequestedAt
	if !event.InRange(requested) {
		requested = r.At
	}
	return []any{r.RequestID, r.Kind, r.Stage, r.Destination, r.Status, r.Operator, r.Reason, r.Subject,
		requested, r.At, r.At.Sub(requested).Milliseconds(), r.Rows, uint32(r.Mutations), nonNil(r.Destinations),
		uint32(r.LinkedAnonymousIDs), r.Error}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
