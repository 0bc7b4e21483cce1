package chx

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// SubjectsWhere is the condition that matches the rows of an events table
// belonging to subjects given as pseudonyms, with its arguments: users are
// userId pseudonyms, anonymous anonymousId pseudonyms. Each kind only ever
// fills its own column; subject holds one of either, and is the only one a
// coarse (export) profile keeps. Erasure and export both find rows by it.
func SubjectsWhere(users, anonymous []string) (string, []any) {
	if len(users)+len(anonymous) == 0 {
		return "0", nil
	}
	conds, args := []string{"subject IN ?"}, []any{groupSet(users, anonymous)}
	if len(users) > 0 {
		conds, args = append(conds, "user_pseudonym IN ?"), append(args, groupSet(users))
	}
	if len(anonymous) > 0 {
		conds, args = append(conds, "anonymous_pseudonym IN ?"), append(args, groupSet(anonymous))
	}
	return strings.Join(conds, " OR "), args
}

// ExportQuery reads every column of the subjects' rows in db's events
// table, oldest first, at most limit of them: the privacy API's export.
// It is here, beside the condition it shares with erasure, so the sink's
// test of every statement on a current ClickHouse engine runs it too.
func ExportQuery(db string, users, anonymous []string, limit int) (string, []any) {
	where, args := SubjectsWhere(users, anonymous)
	return fmt.Sprintf("SELECT * FROM %s.events WHERE %s ORDER BY event_time, message_id LIMIT %d", db, where, limit), args
}

// groupSet binds as ('a', 'b'), each value quoted; a bare slice would bind
// as an array.
func groupSet(values ...[]string) clickhouse.GroupSet {
	g := clickhouse.GroupSet{}
	for _, vs := range values {
		for _, v := range vs {
			g.Value = append(g.Value, v)
		}
	}
	return g
}

// LargeQuery lets one statement hold thousands of pseudonyms: the default
// max_query_size (256 KiB) would refuse a full erasure window.
func LargeQuery(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(LargeQuerySettings()))
}

// LargeQuerySettings are the settings LargeQuery sends with a statement.
func LargeQuerySettings() clickhouse.Settings { return clickhouse.Settings{"max_query_size": 64 << 20} }
