package chwriter

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// serverVersion is a ClickHouse release as version() prints it: four
// numbers on current releases (24.8.4.13), three on 18.16 (18.16.1),
// sometimes followed by a vendor's tag (22.8.15.25.altinitystable).
type serverVersion struct {
	// parts are major, minor, patch, build; missing ones are zero.
	parts [4]int
	text  string
}

// parseServerVersion reads the leading numbers of s. It needs at least a
// major and a minor number; anything after the numbers is kept in the
// text only.
func parseServerVersion(s string) (serverVersion, error) {
	v := serverVersion{text: strings.TrimSpace(s)}
	n := 0
	for _, field := range strings.Split(v.text, ".") {
		digits := field
		if i := strings.IndexFunc(field, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
			digits = field[:i]
		}
		num, err := strconv.Atoi(digits)
		if err != nil || n == len(v.parts) {
			break
		}
		v.parts[n] = num
		n++
		if digits != field { // a tag glued to the number (19.5-lts): stop there
			break
		}
	}
	if n < 2 {
		return serverVersion{}, fmt.Errorf("clickhouse version %q: want at least major.minor", s)
	}
	return v, nil
}

// atLeast reports whether v is major.minor or later.
func (v serverVersion) atLeast(major, minor int) bool {
	if v.parts[0] != major {
		return v.parts[0] > major
	}
	return v.parts[1] >= minor
}

func (v serverVersion) String() string { return v.text }

// features are the newer server capabilities the sink uses when the server
// has them. The zero value is the 18.16 path, which every later release
// accepts too: a gate only ever chooses a better way to do the same thing,
// never a different schema, so a database migrated on one version keeps
// working on any other.
//
// LowCardinality(String) is deliberately not gated: it is production-ready
// only from 19.3, a migration runs once per database, so the column types
// would depend on the server the first sink happened to meet; and turning
// existing String columns into it rewrites their data.
type features struct {
	// addColumnIfNotExists: ALTER TABLE ... ADD COLUMN IF NOT EXISTS, from
	// 19.1. Migrations add columns with it, so sinks starting together do
	// not race between looking at system.columns and altering; 18.16
	// rejects the syntax (code 62), and there the look-alter-look-again
	// path stays.
	addColumnIfNotExists bool
	// insertPartitionLimit: max_partitions_per_insert_block, from 19.5
	// (default 100). Such a server refuses an insert whose rows span more
	// months than that with TOO_MANY_PARTS, which no amount of retrying
	// cures, so the sink splits the batch instead. 18.16 has no such limit
	// and raises TOO_MANY_PARTS only when merges lag behind inserts, which
	// waiting cures and splitting would only make worse: there the whole
	// batch is retried.
	insertPartitionLimit bool
}

// featuresOf decides the gates for a server version.
func featuresOf(v serverVersion) features {
	return features{
		addColumnIfNotExists: v.atLeast(19, 1),
		insertPartitionLimit: v.atLeast(19, 5),
	}
}

// detectServer asks the server its version with SELECT version() (the
// handshake's version lacks the build number and any vendor tag).
func detectServer(ctx context.Context, conn driver.Conn) (serverVersion, error) {
	var text string
	if err := conn.QueryRow(ctx, versionQuery).Scan(&text); err != nil {
		return serverVersion{}, fmt.Errorf("read server version: %w", err)
	}
	return parseServerVersion(text)
}
