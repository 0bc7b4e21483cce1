package chwriter

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// eventColumns is the insert column list: clickhouse-go needs it explicit on
// 18.16, and naming columns keeps inserts valid when later migrations add
// columns with defaults.
const eventColumns = `message_id, type, event, event_time, received_at, source_id, region,
	subject, user_pseudonym, anonymous_pseudonym, device_pseudonym, advertising_pseudonym,
	ip_truncated, dnt, gpc, context, properties, prop_keys, prop_values,
	kafka_partition, kafka_offset`

// schemaStatements create the database and events table if missing. Every
// statement runs on ClickHouse 18.16 as well as current releases (no TTL,
// no DateTime64, no LowCardinality).
func schemaStatements(db string) []string {
	return []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s", db),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.events (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (subject, event_time)`, db),
	}
}

// checkColumns refuses a table that lacks a column the sink inserts: CREATE
// TABLE IF NOT EXISTS keeps a table another version made, and every insert
// into it would fail, batch after batch, while the sink looked healthy.
func checkColumns(ctx context.Context, conn driver.Conn, db string) error {
	rows, err := conn.Query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = 'events'", db)
	if err != nil {
		return fmt.Errorf("read %s.events columns: %w", db, err)
	}
	defer rows.Close()
	var have []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("read %s.events columns: %w", db, err)
		}
		have = append(have, name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s.events columns: %w", db, err)
	}
	var missing []string
	for _, col := range strings.Split(eventColumns, ",") {
		if col = strings.TrimSpace(col); !slices.Contains(have, col) {
			missing = append(missing, col)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("table %s.events lacks columns %s: it was made by another version of the sink; migrate or rename it", db, strings.Join(missing, ", "))
	}
	return nil
}
