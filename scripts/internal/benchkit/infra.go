package benchkit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/consentflow/consentflow/internal/chx"
)

// Prefixes name everything a benchmark makes on the broker and in
// ClickHouse after the benchmark, so leftovers of an interrupted run can be
// found (CheckLeftovers) and are never confused with the pipeline's own or
// another benchmark's: topics <bench>.<run>.*, consumer groups
// <bench>-<run>-*, databases <bench>_<run>_*.
type Prefixes struct{ Topic, Group, Database string }

// PrefixesOf are the prefixes of bench (sinkbench, erasurebench).
func PrefixesOf(bench string) Prefixes {
	return Prefixes{Topic: bench + ".", Group: bench + "-", Database: bench + "_"}
}

// Announce says on stderr, at the start of run runID, what its topics,
// databases and groups will be called, to find them if it is interrupted.
func (p Prefixes) Announce(runID string) {
	Progress("run %s: topics %s%s.*, databases %s%s_*, groups %s%s-*", runID, p.Topic, runID, p.Database, runID, p.Group, runID)
}

// Infra is a run's connections to Kafka and ClickHouse, the pids of the
// broker and ClickHouse, and the record of the topics, consumer groups and
// databases the run names, to delete at the end. The benchmarks that run
// the whole pipeline share it.
type Infra struct {
	Prefixes Prefixes
	RunID    string
	Admin    *kadm.Client
	Conn     driver.Conn
	// KafkaPID and ClickHousePID are the broker's and ClickHouse's
	// processes, to charge their CPU time; None when they cannot be found.
	KafkaPID, ClickHousePID int

	// servers are ClickHouse's addresses: Conn reads the first; the run's
	// databases are dropped on each (a cluster's replicas each hold one).
	servers []string

	mu        sync.Mutex
	topics    []string
	groups    []string
	databases []string
}

// NewInfra connects to Kafka (as client <bench>-admin) and ClickHouse,
// checks that both answer, and registers the clean-up of everything the
// run will create: topics and groups after the processes using them have
// stopped (cleanups run in reverse order), then databases.
func NewInfra(bench, runID string, brokers []string, clickhouse []string, cl *Cleanups) (*Infra, error) {
	adm, err := NewAdmin(brokers, bench+"-admin")
	if err != nil {
		return nil, err
	}
	conn, err := chx.Open(&chx.Config{Addr: clickhouse[:1]})
	if err != nil {
		adm.Close()
		return nil, err
	}
	e := &Infra{Prefixes: PrefixesOf(bench), RunID: runID, Admin: adm, Conn: conn, servers: clickhouse}
	cl.Add(func() error { adm.Close(); return conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.ListTopics(ctx); err != nil {
		return nil, fmt.Errorf("kafka %v: %w", brokers, err)
	}
	if err := conn.Ping(ctx); err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", clickhouse[0], err)
	}
	cl.Add(e.dropAll)
	e.KafkaPID = WatchPID(brokers[0], "broker")
	e.ClickHousePID = WatchPID(clickhouse[0], "ClickHouse")
	return e, nil
}

// WatchPID is the process listening on addr (what names it in the
// message), to charge its CPU time, or None, said on stderr, when it
// cannot be found: then its CPU time counts as other.
func WatchPID(addr, what string) int {
	pid, err := ListenerPID(addr)
	if err != nil {
		Progress("%s CPU not reported: %v", what, err)
		return None
	}
	return pid
}

// Topic, Group and Database name a topic, consumer group or database of
// the run and record it, to be deleted at the end.
func (e *Infra) Topic(name string) string {
	return e.record(&e.topics, e.Prefixes.Topic+e.RunID+"."+name)
}

// Group: see Topic.
func (e *Infra) Group(name string) string {
	return e.record(&e.groups, e.Prefixes.Group+e.RunID+"-"+name)
}

// Database: see Topic.
func (e *Infra) Database(name string) string {
	return e.record(&e.databases, e.Prefixes.Database+e.RunID+"_"+name)
}

func (e *Infra) record(names *[]string, name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	*names = append(*names, name)
	return name
}

// dropAll deletes every database, consumer group and topic the run named
// (those it never created are fine).
func (e *Infra) dropAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, db := range e.databases {
		errs = append(errs, DropDatabase(ctx, e.Conn, db))
	}
	for _, server := range e.servers[min(1, len(e.servers)):] {
		errs = append(errs, onServer(server, func(conn driver.Conn) error {
			var errs []error
			for _, db := range e.databases {
				errs = append(errs, DropDatabase(ctx, conn, db))
			}
			return errors.Join(errs...)
		}))
	}
	errs = append(errs, DeleteTopicsAndGroups(e.Admin, e.topics, e.groups))
	return errors.Join(errs...)
}

// onServer runs f on a connection of its own to the ClickHouse server at
// addr.
func onServer(addr string, f func(driver.Conn) error) error {
	conn, err := chx.Open(&chx.Config{Addr: []string{addr}})
	if err != nil {
		return fmt.Errorf("clickhouse %s: %w", addr, err)
	}
	defer conn.Close()
	return f(conn)
}

// DropDatabase drops db if it exists.
func DropDatabase(ctx context.Context, conn driver.Conn, db string) error {
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return nil
}

// CheckLeftovers is a benchmark's -check: it prints the topics, consumer
// groups and databases with bench's prefixes that earlier runs left
// behind, and fails if there is anything.
func CheckLeftovers(bench string, brokers []string, clickhouse []string) error {
	p := PrefixesOf(bench)
	adm, err := NewAdmin(brokers, bench+"-admin")
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	var left []string
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, p.Topic) {
			left = append(left, "topic "+t)
		}
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	for _, g := range groups.Groups() {
		if strings.HasPrefix(g, p.Group) {
			left = append(left, "group "+g)
		}
	}
	for _, server := range clickhouse {
		err := onServer(server, func(conn driver.Conn) error {
			rows, err := conn.Query(ctx, "SELECT name FROM system.databases WHERE startsWith(name, ?)", p.Database)
			if err != nil {
				return fmt.Errorf("list databases on %s: %w", server, err)
			}
			defer rows.Close()
			for rows.Next() {
				var name string
				if err := rows.Scan(&name); err != nil {
					return err
				}
				left = append(left, "database "+name+" on "+server)
			}
			return rows.Err()
		})
		if err != nil {
			return err
		}
	}
	fmt.Printf("%d things with prefix %q/%q/%q left behind\n", len(left), p.Topic, p.Group, p.Database)
	for _, l := range left {
		fmt.Println("  ", l)
	}
	if len(left) > 0 {
		return fmt.Errorf("%d leftovers", len(left))
	}
	return nil
}
