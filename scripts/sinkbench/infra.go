package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// Every topic, consumer group and database this tool makes starts with one
// of these, so leftovers of an interrupted run can be found (-check) and are
// never confused with the pipeline's own.
const (
	topicPrefix = "sinkbench."
	groupPrefix = "sinkbench-"
	dbPrefix    = "sinkbench_"
)

// infra is what both parts share: the services, this run's names, the
// built binaries, and the records of what to delete at the end.
type infra struct {
	o     options
	runID string
	bins  binaries
	adm   *kadm.Client
	conn  driver.Conn
	// pids of the broker and ClickHouse, to charge their CPU time;
	// benchkit.None when they cannot be found.
	kafkaPID, chPID int

	mu        sync.Mutex
	topics    []string
	groups    []string
	databases []string
}

// newInfra connects to Kafka and ClickHouse and registers the clean-up of
// everything the run will create: topics and groups after the processes
// using them have stopped (cleanups run in reverse order), then databases.
func newInfra(o options, runID string, cl *benchkit.Cleanups) (*infra, error) {
	adm, err := benchkit.NewAdmin(o.brokers, "sinkbench-admin")
	if err != nil {
		return nil, err
	}
	conn, err := chx.Open(&chx.Config{Addr: []string{o.clickhouse}})
	if err != nil {
		adm.Close()
		return nil, err
	}
	e := &infra{o: o, runID: runID, adm: adm, conn: conn}
	cl.Add(func() error { adm.Close(); return conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.adm.ListTopics(ctx); err != nil {
		return nil, fmt.Errorf("kafka %v: %w", o.brokers, err)
	}
	if err := conn.Ping(ctx); err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", o.clickhouse, err)
	}
	cl.Add(e.dropAll)
	e.kafkaPID = pidOnPort(o.brokers[0], "broker")
	e.chPID = pidOnPort(o.clickhouse, "ClickHouse")
	return e, nil
}

func pidOnPort(addr, what string) int {
	pid, err := benchkit.ListenerPID(addr)
	if err != nil {
		benchkit.Progress("%s CPU not reported: %v", what, err)
		return benchkit.None
	}
	return pid
}

// topic, group and database name a topic, consumer group or database of
// the run and record it, to be deleted at the end.
func (e *infra) topic(name string) string {
	return e.record(&e.topics, topicPrefix+e.runID+"."+name)
}

func (e *infra) group(name string) string {
	return e.record(&e.groups, groupPrefix+e.runID+"-"+name)
}

func (e *infra) database(name string) string {
	return e.record(&e.databases, dbPrefix+e.runID+"_"+name)
}

func (e *infra) record(names *[]string, name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	*names = append(*names, name)
	return name
}

// dropAll deletes every database, consumer group and topic the run named
// (those it never created are fine).
func (e *infra) dropAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, db := range e.databases {
		errs = append(errs, dropDatabase(ctx, e.conn, db))
	}
	errs = append(errs, benchkit.DeleteTopicsAndGroups(e.adm, e.topics, e.groups))
	return errors.Join(errs...)
}

// createTopic creates a delete-policy topic the way the sink's config
// declares events.clean.cn: 3 partitions, one replica, 7 days.
func createTopic(ctx context.Context, adm *kadm.Client, name string) error {
	retention := strconv.FormatInt((168 * time.Hour).Milliseconds(), 10)
	return benchkit.CreateTopic(ctx, adm, name, 3, map[string]*string{"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": &retention})
}

func dropDatabase(ctx context.Context, conn driver.Conn, db string) error {
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return nil
}

// countRows is count() of db.events; 0 while the table does not exist yet.
func countRows(ctx context.Context, conn driver.Conn, db string) (uint64, error) {
	var n uint64
	err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&n)
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && (ex.Code == 60 || ex.Code == 81) { // no table, no database
		return 0, nil
	}
	return n, err
}

// waitMerges waits, for at most limit, until ClickHouse runs no background
// merge, so one phase's merges do not slow the next; it returns how long
// it waited.
func waitMerges(ctx context.Context, conn driver.Conn, limit time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < limit && ctx.Err() == nil {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&n); err != nil || n == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start)
}

// checkLeftovers is -check: it prints what earlier runs left behind and
// fails if there is anything.
func checkLeftovers(o options) error {
	adm, err := benchkit.NewAdmin(o.brokers, "sinkbench-admin")
	if err != nil {
		return err
	}
	defer adm.Close()
	conn, err := chx.Open(&chx.Config{Addr: []string{o.clickhouse}})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	var left []string
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, topicPrefix) {
			left = append(left, "topic "+t)
		}
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	for _, g := range groups.Groups() {
		if strings.HasPrefix(g, groupPrefix) {
			left = append(left, "group "+g)
		}
	}
	rows, err := conn.Query(ctx, "SELECT name FROM system.databases WHERE startsWith(name, ?)", dbPrefix)
	if err != nil {
		return fmt.Errorf("list databases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		left = append(left, "database "+name)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	fmt.Printf("%d things with prefix %q/%q/%q left behind\n", len(left), topicPrefix, groupPrefix, dbPrefix)
	for _, l := range left {
		fmt.Println("  ", l)
	}
	if len(left) > 0 {
		return fmt.Errorf("%d leftovers", len(left))
	}
	return nil
}
