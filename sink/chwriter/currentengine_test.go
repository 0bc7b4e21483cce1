package chwriter

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/testenv"
)

// TestStatementsOnCurrentEngine runs every statement the sink and the
// privacy API's export send, built by their own builders (sql.go,
// schema.go, chx.ExportQuery), on a current ClickHouse release: chdb-core's
// engine (scripts/chdb.sh). The other tests run them on 18.16. The schema
// is migrated as a sink does on a server of the engine's version (so with
// its version-gated statements), twice, as two sinks starting at once do,
// in both destinations' databases; the error codes the sink acts on are
// checked (no table yet, a row refused for its content, an insert of too
// many months, which the gated path splits); rows are inserted in the
// loader's column shapes, then retention, erasure and its verification,
// the audit and the README's queries run with their answers checked.
func TestStatementsOnCurrentEngine(t *testing.T) {
	engine := testenv.NewCurrentEngine(t)
	now := func() time.Time { return time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC) }
	version, err := parseServerVersion(engine.Version(t))
	if err != nil {
		t.Fatal(err)
	}
	if !version.atLeast(24, 1) {
		t.Fatalf("chdb-core's engine is ClickHouse %v, not a current release", version)
	}
	f := featuresOf(version)
	if !f.addColumnIfNotExists || !f.insertPartitionLimit {
		t.Fatalf("ClickHouse %v: the gated statements are not chosen", version)
	}
	db := Default().Database
	var stmts []testenv.Statement
	add := func(name, sql string, args []any, expect ...string) {
		t.Helper()
		stmts = append(stmts, testenv.Statement{Name: name, SQL: bindArgs(t, sql, args...), Expect: expect})
	}
	addAny := func(name, sql string, args ...any) {
		t.Helper()
		stmts = append(stmts, testenv.Statement{Name: name, SQL: bindArgs(t, sql, args...)})
	}
	failsWith := func(name, sql string, codes ...int32) {
		stmts = append(stmts, testenv.Statement{Name: name, SQL: sql, FailsWith: codes})
	}
	// erasure is deleter.erase's statements for s, which find found
	// first: count, delete, wait, count again. The count and the delete
	// go with LargeQuery's settings.
	large := map[string]any(chx.LargeQuerySettings())
	erasure := func(db string, s *subjects, found []string) {
		q, args := subjectsCountQuery(db, s)
		stmts = append(stmts, testenv.Statement{Name: db + ": erasure: count", SQL: bindArgs(t, q, args...), Settings: large, Expect: found})
		q, args = deleteStatement(db, s)
		stmts = append(stmts, testenv.Statement{Name: db + ": erasure: delete", SQL: bindArgs(t, q, args...), Settings: large})
		q, args = pendingMutationsQuery(db)
		stmts = append(stmts, testenv.Statement{Name: db + ": erasure: wait for the mutation", SQL: bindArgs(t, q, args...), Until: "0"})
		q, args = subjectsCountQuery(db, s)
		stmts = append(stmts, testenv.Statement{Name: db + ": erasure: verify", SQL: bindArgs(t, q, args...), Settings: large, Expect: []string{}})
	}

	// Start-up, in both destinations' databases: version, database,
	// migrations (as migrate and apply send them), then checkColumns' look.
	// Before the events table exists the resume finds nothing stored, by
	// the error's code.
	addAny("version", versionQuery)
	{
		q, args := clusterServersQuery("consentflow")
		addAny("cluster servers", q, args...)
	}
	intl := "analytics_intl"
	for _, db := range []string{db, intl} {
		failsWith(db+": stored offsets, no database", storedOffsetsQuery(db), noEventsTable...)
		q, args := databaseExistsQuery(db)
		add(db+": database lookup", q, args, "0")
		addAny(db+": create database", createDatabaseStatement(db))
		failsWith(db+": stored offsets, no table", storedOffsetsQuery(db), noEventsTable...)
		for round := 1; round <= 2; round++ {
			addAny(db+": migrations table", createMigrationsTableStatement(db))
			for _, m := range migrations {
				name := fmt.Sprintf("%s: migration %d (%s), round %d", db, m.version, m.name, round)
				if m.statements != nil {
					for _, s := range m.statements(db, "") {
						addAny(name, s)
					}
				}
				if len(m.columns) > 0 {
					q, args := eventsColumnsQuery(db)
					addAny(name+": columns", q, args...)
					for _, c := range m.columns {
						addAny(name+": add "+c.name, c.addStatement(db, f))
					}
				}
				if round == 1 {
					addAny(name+": record", migrationInsert(db)+" VALUES "+valuesRow(t, migrationValues(m, time.Now().UTC())))
				}
			}
		}
		add(db+": schema version", schemaVersionQuery(db), nil, strconv.Itoa(len(migrations)))
		q, args = eventsColumnsQuery(db)
		var columns []string
		for _, c := range strings.Split(eventColumns, ",") {
			columns = append(columns, strings.TrimSpace(c))
		}
		stmts = append(stmts, testenv.Statement{Name: db + ": checkColumns", SQL: bindArgs(t, strings.Replace(q, "SELECT name, type", "SELECT name", 1), args...), Expect: columns})
	}

	// classify's codes. A row whose content ClickHouse refuses (here
	// through a DEFAULT an operator added) fails with a code of
	// contentCodes, so it goes to the dead-letter topic rather than be
	// retried for ever.
	addAny("operator's column", fmt.Sprintf(quantityColumn, intl))
	bad := event.Clean{SchemaVersion: event.SchemaVersion, MessageID: "bad", Type: "track", Event: "Order Completed",
		Timestamp: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), ReceivedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Subject: "k1.x", Properties: json.RawMessage(`{"quantity":"lots"}`)}
	var content []int32
	for code := range contentCodes {
		content = append(content, code)
	}
	failsWith("a row refused for its content", eventsInsert(intl)+" VALUES "+eventValues(t, []*row{decodeTestRow(t, bad, 0, 0)}), content...)
	addAny("operator's column dropped", "ALTER TABLE "+intl+".events DROP COLUMN quantity")
	// The gated split: an insert spanning more months than
	// max_partitions_per_insert_block (100) fails with TOO_MANY_PARTS, and
	// its halves, as load splits it, go in.
	var months []*row
	for i := range 101 {
		at := time.Date(2018, time.Month(1+i), 1, 0, 0, 0, 0, time.UTC)
		c := event.Clean{SchemaVersion: event.SchemaVersion, MessageID: fmt.Sprintf("month-%d", i), Type: "track", Event: "Page Viewed",
			Timestamp: at, ReceivedAt: at, Subject: "k1.y"}
		months = append(months, decodeTestRow(t, c, 0, int64(i)))
	}
	failsWith("an insert of 101 months", eventsInsert(intl)+" VALUES "+eventValues(t, months), codeTooManyParts)
	half := len(months) / 2
	addAny("its first half", eventsInsert(intl)+" VALUES "+eventValues(t, months[:half]))
	addAny("its second half", eventsInsert(intl)+" VALUES "+eventValues(t, months[half:]))
	add("the 101 months stored", "SELECT count(), uniqExact(toYYYYMM(event_time)) FROM "+intl+".events", nil, "101\t101")

	// The loader: the README's events in partition 0 and two of an expired
	// month in partition 1, decoded and laid out as the sink does.
	var rows []*row
	for i, c := range readmeEvents() {
		rows = append(rows, decodeTestRow(t, c, 0, int64(i)))
	}
	old := time.Date(2026, 8, 20, 12, 0, 0, 0, time.UTC)
	for i, s := range []string{"k1.dave", "k1.erin"} {
		c := event.Clean{SchemaVersion: event.SchemaVersion, MessageID: fmt.Sprintf("old-%d", i), Type: "track", Event: "Signed Up",
			Timestamp: old, ReceivedAt: old, SourceID: "web", Region: "cn", Subject: s, UserID: s, AnonymousID: "k1.anon-" + s[3:],
			Context: json.RawMessage(`{"locale":"zh-CN","note":"it's \"quoted\" \\ here"}`), Properties: json.RawMessage(`{"plan":"pro","seats":3}`),
			Purposes: []string{"analytics"}, Country: "CN", Browser: "Firefox", OS: "Linux", DeviceClass: "desktop"}
		rows = append(rows, decodeTestRow(t, c, 1, int64(i)))
	}
	addAny("insert events", eventsInsert(db)+" VALUES "+eventValues(t, rows))
	add("stored offsets", storedOffsetsQuery(db), nil, "0\t8", "1\t1")
	var stored []string
	for _, r := range rows {
		stored = append(stored, fmt.Sprintf("%d\t%d", r.partition, r.offset))
	}
	add("rows already stored", notStoredQuery(db, rows), nil, stored...)

	// Retention: three months kept in November drop August.
	keep := Retention{Months: 3}.oldestKept(now())
	q, args := partitionsQuery(db)
	add("partitions", q, args, "202608", "202611")
	for _, month := range []int{202608, 202611} {
		if month < keep {
			addAny(fmt.Sprintf("drop partition %d", month), dropPartitionStatement(db, month))
		}
	}
	add("partitions after retention", q, args, "202611")

	// The README's analysts' queries, with their answers.
	analyst, audit := readmeSQL(t)
	if len(analyst) != len(readmeAnswers) || len(audit) != 1 {
		t.Fatalf("README.md has %d analyst queries and %d audit ones; this test knows the answers of %d and 1", len(analyst), len(audit), len(readmeAnswers))
	}
	for i, sql := range analyst {
		var expect []string
		for _, r := range readmeAnswers[i] {
			expect = append(expect, strings.Join(r, "\t"))
		}
		add(fmt.Sprintf("README query %d", i+1), strings.ReplaceAll(sql, "analytics_cn.", db+"."), nil, expect...)
	}

	// A full erasure window: as many pseudonyms as one statement holds,
	// more text than the default max_query_size takes, which LargeQuery's
	// settings lift. Among them bob (as a userId) and carol (as an
	// anonymousId), and two more subjects with a row each.
	window := subjects{users: []string{"k1.bob"}, anonymous: []string{"k1.carol"}}
	for i := range maxPseudonymsPerStatement - 2 {
		p := fmt.Sprintf("k1.%032x", i)
		if i%2 == 0 {
			window.users = append(window.users, p)
		} else {
			window.anonymous = append(window.anonymous, p)
		}
	}
	if n := len(window.chunks(maxPseudonymsPerStatement)); n != 1 {
		t.Fatalf("a full window is %d statements", n)
	}
	u, a := window.users[len(window.users)-1], window.anonymous[len(window.anonymous)-1]
	erased := []*row{
		decodeTestRow(t, event.Clean{SchemaVersion: event.SchemaVersion, MessageID: "w-1", Type: "track", Event: "Page Viewed",
			Timestamp: now(), ReceivedAt: now(), Subject: u, UserID: u, AnonymousID: "k1.other"}, 0, 200),
		decodeTestRow(t, event.Clean{SchemaVersion: event.SchemaVersion, MessageID: "w-2", Type: "track", Event: "Page Viewed",
			Timestamp: now(), ReceivedAt: now(), Subject: a, AnonymousID: a}, 0, 201),
	}
	addAny("rows of the window's other subjects", eventsInsert(db)+" VALUES "+eventValues(t, erased))
	q, args = subjectsCountQuery(db, &window)
	failsWith("the window's count without LargeQuery's settings", bindArgs(t, q, args...), 62)
	erasure(db, &window, []string{"k1.bob\t\t\t3", "k1.carol\t\t\t1", u + "\t" + u + "\tk1.other\t1", a + "\t\t" + a + "\t1"})

	// The audit: a sink's receipt and one without a request time, then
	// the runbook's query.
	requested := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)
	receipts := []event.Receipt{
		{RequestID: "5b0c7b52-2f5e-4d2b-9a55-0d7f3c1e8a41", Kind: event.ReceiptErasure, Stage: event.StageCollector, Status: event.StatusAccepted,
			Operator: "dpo", Reason: "gdpr art. 17", Subject: "k1.bob", RequestedAt: requested, At: requested, Destinations: []string{"cn", "intl"}},
		{RequestID: "5b0c7b52-2f5e-4d2b-9a55-0d7f3c1e8a41", Kind: event.ReceiptErasure, Stage: event.StageSink, Destination: "cn",
			Status: event.StatusDeleted, Subject: "k1.bob", RequestedAt: requested, At: requested.Add(1500 * time.Millisecond), Rows: 3, Mutations: 1},
		{RequestID: "other", Kind: event.ReceiptExport, Stage: event.StageSink, Status: event.StatusServed, At: requested},
	}
	var auditRows []string
	for i := range receipts {
		auditRows = append(auditRows, valuesRow(t, auditValues(&receipts[i])))
	}
	ins := auditInsert(db) + " VALUES " + strings.Join(auditRows, ", ")
	addAny("audit insert", ins)
	addAny("audit insert again (a crash before the commit)", ins)
	add("README audit query", strings.ReplaceAll(audit[0], "analytics_cn.", db+"."), nil,
		"2026-11-15 10:00:00\terasure\tcollector\t\taccepted\tdpo\tgdpr art. 17\tk1.bob\t0\t0",
		"2026-11-15 10:00:01\terasure\tsink\tcn\tdeleted\t\t\tk1.bob\t3\t1500")

	// The privacy API's export of alice, who kept her rows.
	q, args = chx.ExportQuery(db, nil, []string{"k1.alice"}, 1001)
	stmts = append(stmts, testenv.Statement{Name: "export", SQL: bindArgs(t, strings.Replace(q, "SELECT *", "SELECT message_id", 1), args...),
		Expect: []string{"q-0", "q-1", "q-2", "q-3", "q-4"}})
	addAny("export, every column", q, args...)

	engine.Run(t, stmts)
}

// TestUsersSQLOnCurrentEngine parses the users and grants the sink and the
// privacy API log in with on current releases (deployments/clickhouse/
// *.sql, rendered by render.sh as an administrator does) in chdb-core's
// engine. Parses only: the engine's default user may not manage users
// (ACCESS_DENIED), but its parser knows the privilege names and the
// clauses, which is where a release would refuse the files.
func TestUsersSQLOnCurrentEngine(t *testing.T) {
	engine := testenv.NewCurrentEngine(t)
	dir := "../../deployments/clickhouse"
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil || len(files) < 2 {
		t.Fatalf("users SQL in %s: %v %v", dir, files, err)
	}
	var stmts []testenv.Statement
	for _, file := range files {
		cmd := exec.Command(filepath.Join(dir, "render.sh"), file)
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = os.Environ()
		for _, m := range regexp.MustCompile(`\$\{([A-Z_]+_SHA256)\}`).FindAllStringSubmatch(string(raw), -1) {
			sum := sha256.Sum256([]byte("test password of " + m[1]))
			cmd.Env = append(cmd.Env, m[1]+"="+hex.EncodeToString(sum[:]))
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("render.sh %s: %v", file, err)
		}
		var text strings.Builder
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "--") {
				text.WriteString(line + "\n")
			}
		}
		for i, stmt := range strings.Split(text.String(), ";") {
			if stmt = strings.TrimSpace(stmt); stmt != "" {
				stmts = append(stmts, testenv.Statement{Name: fmt.Sprintf("%s, statement %d", filepath.Base(file), i+1), SQL: "EXPLAIN AST " + stmt})
			}
		}
	}
	if len(stmts) < 6 {
		t.Fatalf("%d statements in %v", len(stmts), files)
	}
	engine.Run(t, stmts)
}

// decodeTestRow is c as the loader's row, through decodeRow.
func decodeTestRow(t *testing.T, c event.Clean, partition int32, offset int64) *row {
	t.Helper()
	v, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRow(&kgo.Record{Value: v, Partition: partition, Offset: offset})
	if err != nil {
		t.Fatal(err)
	}
	return &r
}

// eventValues is rows as the loader lays them out (eachEventColumn), as
// the tuples of INSERT ... VALUES.
func eventValues(t *testing.T, rows []*row) string {
	t.Helper()
	tuples := make([][]string, len(rows))
	err := eachEventColumn(rows, func(_ int, col any) error {
		// The column's slice is reused for the next: render it now.
		var cells []string
		switch col := col.(type) {
		case []string:
			for _, v := range col {
				cells = append(cells, literal(t, v))
			}
		case []json.RawMessage:
			for _, v := range col {
				cells = append(cells, literal(t, v))
			}
		case [][]string:
			for _, v := range col {
				cells = append(cells, literal(t, v))
			}
		case []time.Time:
			for _, v := range col {
				cells = append(cells, literal(t, v))
			}
		case []uint8:
			for _, v := range col {
				cells = append(cells, literal(t, v))
			}
		case []int32:
			for _, v := range col {
				cells = append(cells, literal(t, v))
			}
		case []int64:
			for _, v := range col {
				cells = append(cells, literal(t, v))
			}
		default:
			t.Fatalf("column of %T: teach eventValues its literal", col)
		}
		for i := range rows {
			tuples[i] = append(tuples[i], cells[i])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(tuples))
	for i, tuple := range tuples {
		out[i] = "(" + strings.Join(tuple, ", ") + ")"
	}
	return strings.Join(out, ", ")
}

// valuesRow is the values of a batch.Append as a VALUES tuple.
func valuesRow(t *testing.T, values []any) string {
	t.Helper()
	cells := make([]string, len(values))
	for i, v := range values {
		cells[i] = literal(t, v)
	}
	return "(" + strings.Join(cells, ", ") + ")"
}

// literal is v as ClickHouse SQL. A DateTime goes as its Unix time, as
// clickhouse-go sends it.
func literal(t *testing.T, v any) string {
	t.Helper()
	switch v := v.(type) {
	case string:
		return quote(v)
	case json.RawMessage:
		return quote(string(v))
	case []string:
		cells := make([]string, len(v))
		for i, s := range v {
			cells[i] = quote(s)
		}
		return "[" + strings.Join(cells, ", ") + "]"
	case time.Time:
		return strconv.FormatInt(v.Unix(), 10)
	case uint8, int32, uint32, int64:
		return fmt.Sprint(v)
	}
	t.Fatalf("value of %T: teach literal its SQL", v)
	return ""
}

func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// bindArgs binds args to the ? of query as clickhouse-go does for the
// kinds of argument the sink passes: strings, and GroupSets of strings.
func bindArgs(t *testing.T, query string, args ...any) string {
	t.Helper()
	parts := strings.Split(query, "?")
	if len(parts)-1 != len(args) {
		t.Fatalf("%d placeholders, %d arguments: %s", len(parts)-1, len(args), query)
	}
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(p)
		if i == len(args) {
			break
		}
		switch a := args[i].(type) {
		case string:
			b.WriteString(quote(a))
		case clickhouse.GroupSet:
			cells := make([]string, len(a.Value))
			for j, v := range a.Value {
				s, ok := v.(string)
				if !ok {
					t.Fatalf("GroupSet of %T: teach bindArgs its literal", v)
				}
				cells[j] = quote(s)
			}
			b.WriteString("(" + strings.Join(cells, ", ") + ")")
		default:
			t.Fatalf("argument of %T: teach bindArgs its literal", a)
		}
	}
	return b.String()
}

// sqlStart is how a string literal holding a statement begins: the code
// writes SQL's words in capitals.
var sqlStart = regexp.MustCompile(`^\s*(SELECT|INSERT|ALTER|CREATE|DROP|OPTIMIZE|TRUNCATE|RENAME|DETACH|ATTACH|SYSTEM|KILL|DELETE|SET|GRANT|WITH)\s`)

// TestSQLBuiltInOnePlace keeps TestStatementsOnCurrentEngine complete:
// outside sql.go and schema.go (and metrics.go, whose help texts name
// statements), no file of the sink or of the privacy API holds a statement
// of its own. Build a new one in sql.go (the sink's) or
// internal/chx (shared), and add it to that test.
func TestSQLBuiltInOnePlace(t *testing.T) {
	allowed := []string{"sql.go", "schema.go", "metrics.go"}
	for _, dir := range []string{".", "../../collector/privacyapi"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") || (dir == "." && slices.Contains(allowed, filepath.Base(file))) {
				continue
			}
			fset := token.NewFileSet()
			parsed, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(parsed, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				if s, err := strconv.Unquote(lit.Value); err == nil && sqlStart.MatchString(s) {
					t.Errorf("%s: a statement built outside sql.go: %q", fset.Position(lit.Pos()), s)
				}
				return true
			})
		}
	}
}
