package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/keyring"
	"github.com/consentflow/consentflow/internal/policy"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// Every topic, consumer group and database this tool makes starts with one
// of these, so leftovers of an interrupted run can be found (-check) and are
// never confused with the pipeline's own or another bench's.
const (
	topicPrefix = "erasurebench."
	groupPrefix = "erasurebench-"
	dbPrefix    = "erasurebench_"
)

// The development pseudonym keys, relative to the repository root: the
// in-region key k1 and the export destination's x1, as `make run` and the
// tests use them.
const (
	devPseudonymKey = "configs/dev-pseudonym.key"
	devExportKey    = "configs/dev-export.key"
)

// binaries are the three commands, built once per run.
type binaries struct{ collector, enricher, sink string }

// infra is the run's connections, names and built binaries, and the
// record of what to delete at the end.
type infra struct {
	o     options
	runID string
	bins  binaries
	tmp   string // the run's temporary directory: binaries, collector.yaml
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
	adm, err := benchkit.NewAdmin(o.brokers, "erasurebench-admin")
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
		if err := e.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			errs = append(errs, fmt.Errorf("drop database %s: %w", db, err))
		}
	}
	errs = append(errs, benchkit.DeleteTopicsAndGroups(e.adm, e.topics, e.groups))
	return errors.Join(errs...)
}

// checkLeftovers is -check: it prints what earlier runs left behind and
// fails if there is anything.
func checkLeftovers(o options) error {
	adm, err := benchkit.NewAdmin(o.brokers, "erasurebench-admin")
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

// keyrings are the pseudonym keys the pipeline runs with: the in-region
// keyring (the clean topic, analytics_cn's rows) and the export
// destination's.
type keyrings struct{ region, export *policy.Keyring }

// loadKeys reads the dev keys as the services do (keyring.Config), so the
// final check computes the very pseudonyms the enricher wrote.
func loadKeys(root string) (keyrings, error) {
	var k keyrings
	for _, c := range []struct {
		id, file, section, env string
		out                    **policy.Keyring
	}{
		{"k1", devPseudonymKey, "pseudonym", "ENRICHER_PSEUDONYM_KEY", &k.region},
		{"x1", devExportKey, "export.pseudonym", "ENRICHER_EXPORT_PSEUDONYM_KEY", &k.export},
	} {
		cfg := keyring.Config{KeyID: c.id, KeyFile: filepath.Join(root, c.file)}
		if err := cfg.Resolve(c.section, c.env); err != nil {
			return k, fmt.Errorf("dev key %s: %w", c.file, err)
		}
		kr, err := cfg.Keyring()
		if err != nil {
			return k, fmt.Errorf("dev key %s: %w", c.file, err)
		}
		*c.out = kr
	}
	return k, nil
}

// metrics scrapes the admin port's /metrics of s.
func metrics(s *benchkit.Service) (promText, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + s.AdminAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %s", s.Name, resp.Status)
	}
	return parseProm(b), nil
}

// promText is a scrape: sample lines by metric name.
type promText map[string][]promSample

type promSample struct {
	labels string
	value  float64
}

// parseProm reads the text exposition format, enough for counters, gauges
// and histogram _sum/_count.
func parseProm(b []byte) promText {
	out := promText{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name, labels := line[:i], ""
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name, labels = name[:j], name[j:]
		}
		out[name] = append(out[name], promSample{labels, v})
	}
	return out
}

// sum adds the samples of name whose labels contain every one of match
// (such as `route="clean"`).
func (p promText) sum(name string, match ...string) float64 {
	var t float64
	for _, s := range p[name] {
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(s.labels, m)
		}
		if ok {
			t += s.value
		}
	}
	return t
}
