package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
	"github.com/consentflow/consentflow/sink/chwriter"
)

// insertColumns is the sink's insert column list (sink/chwriter eventColumns,
// unexported there), in the order the raw baseline appends values.
const insertColumns = `message_id, type, event, event_time, received_at, source_id, region,
	subject, user_pseudonym, anonymous_pseudonym, device_pseudonym, advertising_pseudonym,
	ip_truncated, dnt, gpc, context, properties, prop_keys, prop_values,
	kafka_partition, kafka_offset,
	purposes, imei_pseudonym, android_id_pseudonym, mac_pseudonym, country,
	browser, browser_version, os, os_version, device_class`

// cleanSubjects is how many subjects the pre-filled events are about.
const cleanSubjects = 20000

// tputRow is one pre-filled event as the sink would insert it: decoded,
// properties flattened, with its Kafka partition and offset.
type tputRow struct {
	c            event.Clean
	keys, values []string
	partition    int32
	offset       int64
}

// CPU slots of a throughput phase's benchkit.CPUClock.
const (
	cpuSelf = iota
	cpuSink
	cpuClickHouse
	cpuKafka
)

// phase is one measurement of the throughput part.
type phase struct {
	round  int
	target string // sink, raw, or sink in-process
	rows   uint64
	// wall is the timed part: for the sink from /readyz to the last row
	// counted, for raw from the first PrepareBatch to the last Send.
	wall time.Duration
	// sink only: start-up (process start to /readyz) and from /readyz to
	// the first row counted (group join, first fetch, first batch).
	startup, firstRow time.Duration
	settle            time.Duration     // waited for merges before it
	cpu               benchkit.CPUUsage // by the slots cpuSelf, cpuSink, cpuClickHouse, cpuKafka
	peakRSSKiB        int64
	// From the sink's /metrics: inserts, the time spent in them
	// (PrepareBatch to Send), flushes by reason.
	inserts, insertSeconds float64
	flushes                map[string]float64
}

func (p phase) rowsPerSec() float64 {
	if p.wall <= 0 {
		return 0
	}
	return float64(p.rows) / p.wall.Seconds()
}

// tputReport is what the throughput part found.
type tputReport struct {
	events       int
	valueBytes   int64
	partitions   map[int32]int
	prefill      time.Duration
	decodeNs     float64 // event.DecodeClean and flattening per row, one goroutine
	decodeParNs  float64 // the same on GOMAXPROCS goroutines, wall per row
	decodeRows   int
	phases       []phase
	profile      *phase
	profilePath  string
	profileError error
}

func runThroughput(ctx context.Context, e *infra, cl *benchkit.Cleanups) (*tputReport, error) {
	o := e.o
	topic, dlq := e.Topic("clean"), e.Topic("dlq")
	if err := createTopic(ctx, e.Admin, topic); err != nil {
		return nil, err
	}
	gen, err := newCleanGen(e.RunID, cleanSubjects)
	if err != nil {
		return nil, err
	}
	rep := &tputReport{events: o.events, partitions: map[int32]int{}}
	benchkit.Progress("pre-filling %s with %d clean events", topic, o.events)
	start := time.Now()
	rows, sample, err := prefill(ctx, o.Brokers, topic, gen, o.events, rep)
	if err != nil {
		return nil, err
	}
	rep.prefill = time.Since(start)
	benchkit.Progress("  %d events, %.0f bytes each, in %v (partitions %v)", o.events, float64(rep.valueBytes)/float64(o.events), rep.prefill.Round(time.Millisecond), rep.partitions)
	rep.decodeRows = len(sample)
	rep.decodeNs = decodeCost(sample, 1)
	rep.decodeParNs = decodeCost(sample, runtime.GOMAXPROCS(0))
	sample = nil
	benchkit.Progress("  reference decode (event.DecodeClean + properties): %.1f µs/row on one goroutine, %.1f on %d", rep.decodeNs/1000, rep.decodeParNs/1000, runtime.GOMAXPROCS(0))

	// The first sink phase's table is the template of the raw phases'.
	var template string
	for r := 1; r <= o.rounds; r++ {
		order := []string{"sink", "raw"}
		if r%2 == 0 {
			order = []string{"raw", "sink"}
		}
		for _, target := range order {
			settle := waitMerges(ctx, e.Conn, 60*time.Second)
			var ph phase
			var db string
			var err error
			if target == "sink" {
				benchkit.Progress("round %d: sink binary", r)
				ph, db, err = sinkPhase(ctx, e, r, topic, dlq)
			} else {
				benchkit.Progress("round %d: raw clickhouse-go insert", r)
				ph, db, err = rawPhase(ctx, e, r, template, rows)
			}
			if err != nil {
				return rep, err
			}
			ph.settle = settle
			benchkit.Progress("  %.0f rows/s (%d rows in %v)", ph.rowsPerSec(), ph.rows, ph.wall.Round(time.Millisecond))
			rep.phases = append(rep.phases, ph)
			if template == "" {
				template = db
			} else if err := benchkit.DropDatabase(ctx, e.Conn, db); err != nil {
				return rep, err
			}
		}
	}

	if o.cpuProfile != "" {
		rows = nil // its garbage would otherwise be scanned by every GC of the in-process sink
		runtime.GC()
		waitMerges(ctx, e.Conn, 60*time.Second)
		benchkit.Progress("sink in this process, under the CPU profiler -> %s", o.cpuProfile)
		ph, err := inProcessPhase(ctx, e, topic, dlq)
		rep.profilePath = o.cpuProfile
		if err != nil {
			rep.profileError = err
			benchkit.Progress("  in-process sink failed: %v", err)
		} else {
			benchkit.Progress("  %.0f rows/s (%d rows in %v)", ph.rowsPerSec(), ph.rows, ph.wall.Round(time.Millisecond))
			rep.profile = &ph
		}
	}
	return rep, nil
}

// prefill produces n clean events to topic as the enricher does (zstd
// batches, keyed by subject pseudonym, acks from all replicas) and returns
// them as rows with their partitions and offsets, plus the first values
// for the decode measurement.
func prefill(ctx context.Context, brokers []string, topic string, gen *cleanGen, n int, rep *tputReport) ([]tputRow, [][]byte, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("sinkbench-prefill"), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	rows := make([]tputRow, n)
	sample := make([][]byte, 0, min(n, 50000))
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		c := gen.clean(i, n)
		v, err := json.Marshal(c)
		if err != nil {
			return nil, nil, err
		}
		keys, values, err := flattenProperties(c.Properties)
		if err != nil {
			return nil, nil, err
		}
		rows[i] = tputRow{c: c, keys: keys, values: values}
		rep.valueBytes += int64(len(v))
		if len(sample) < cap(sample) {
			sample = append(sample, v)
		}
		cl.Produce(ctx, &kgo.Record{Key: []byte(c.Subject), Value: v}, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			rows[i].partition, rows[i].offset = r.Partition, r.Offset
			rep.partitions[r.Partition]++
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, nil, err
	}
	if firstErr != nil {
		return nil, nil, fmt.Errorf("produce: %w", firstErr)
	}
	return rows, sample, nil
}

// flattenProperties is sink/chwriter's (unexported): the top-level
// properties as parallel key and value arrays, sorted by key; strings as
// they are, other values as their JSON text.
func flattenProperties(raw json.RawMessage) ([]string, []string, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return []string{}, []string{}, nil
	}
	var props map[string]json.RawMessage
	if err := json.Unmarshal(raw, &props); err != nil {
		return nil, nil, err
	}
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	values := make([]string, len(keys))
	for i, k := range keys {
		v := bytes.TrimSpace(props[k])
		values[i] = string(v)
		if len(v) > 0 && v[0] == '"' {
			_ = json.Unmarshal(v, &values[i])
		}
	}
	return keys, values, nil
}

// decodeCost times the sink's reference decoding of each record
// (event.DecodeClean, then flattening the properties: its fallback, and
// what its one-pass decoder is fuzzed against; BenchmarkDecodeRow times
// that one) on the given number of goroutines: wall nanoseconds per row.
func decodeCost(values [][]byte, goroutines int) float64 {
	if len(values) == 0 {
		return 0
	}
	start := time.Now()
	var wg sync.WaitGroup
	per := (len(values) + goroutines - 1) / goroutines
	for lo := 0; lo < len(values); lo += per {
		wg.Add(1)
		go func(part [][]byte) {
			defer wg.Done()
			for _, v := range part {
				c, err := event.DecodeClean(v)
				if err == nil {
					_, _, _ = flattenProperties(c.Properties)
				}
			}
		}(values[lo:min(lo+per, len(values))])
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / float64(len(values))
}

// sinkPhase runs the sink binary on the pre-filled topic with a new group
// and database, and times it from /readyz until the database holds every
// event. It returns the database, which the caller drops or keeps.
func sinkPhase(ctx context.Context, e *infra, round int, topic, dlq string) (phase, string, error) {
	o := e.o
	ph := phase{round: round, target: "sink"}
	db, group := e.Database(fmt.Sprintf("s%d", round)), e.Group(fmt.Sprintf("s%d", round))
	started := time.Now()
	svc, err := benchkit.StartService(e.Bins.Sink, o.Root, "sink",
		"KAFKA_BROKERS="+strings.Join(o.Brokers, ","), "TOPICS_CLEAN_NAME="+topic, "TOPICS_DLQ_NAME="+dlq,
		"GROUP_ID="+group, "DATABASE="+db, "CLICKHOUSE_ADDR="+o.ClickHouse, "LOG_LEVEL=warn")
	if err != nil {
		return ph, db, err
	}
	defer svc.Stop()
	ready, err := svc.WaitReady(ctx)
	if err != nil {
		return ph, db, err
	}
	ph.startup = ready.Sub(started)
	clock := benchkit.CPUClock{cpuSelf: benchkit.Self, cpuSink: svc.PID(), cpuClickHouse: e.ClickHousePID, cpuKafka: e.KafkaPID}
	before := clock.Read()
	first, done, err := waitCount(ctx, e, db, uint64(o.events), ready, svc.Alive)
	if err != nil {
		return ph, db, err
	}
	ph.cpu = clock.Read().Since(before)
	ph.wall, ph.firstRow = done.Sub(ready), first.Sub(ready)
	if ph.peakRSSKiB, err = benchkit.PeakRSS(svc.PID()); err != nil {
		return ph, db, err
	}
	if m, err := svc.Metrics(); err == nil {
		ph.inserts = m.Sum("sink_insert_duration_seconds_count")
		ph.insertSeconds = m.Sum("sink_insert_duration_seconds_sum")
		ph.flushes = map[string]float64{}
		for _, r := range []string{"rows", "bytes", "time"} {
			ph.flushes[r] = m.Sum("sink_flushes_total", `reason="`+r+`"`)
		}
	}
	if err := svc.Stop(); err != nil {
		return ph, db, err
	}
	ph.rows, err = exactCount(ctx, e, db)
	return ph, db, err
}

// waitCount polls count() of db.events every -count-poll until it reaches
// want, and returns when it first saw a row and when it saw them all.
func waitCount(ctx context.Context, e *infra, db string, want uint64, from time.Time, alive func() error) (first, done time.Time, err error) {
	limit := 2*time.Minute + time.Duration(want/5000)*time.Second // 5000 rows/s at least
	var n uint64
	for {
		n, err = benchkit.CountRows(ctx, e.Conn, db)
		now := time.Now()
		if err != nil {
			return first, now, fmt.Errorf("count rows: %w", err)
		}
		if n > 0 && first.IsZero() {
			first = now
		}
		if n >= want {
			return first, now, nil
		}
		if err := alive(); err != nil {
			return first, now, err
		}
		if now.Sub(from) > limit {
			return first, now, fmt.Errorf("%d of %d rows after %v", n, want, limit)
		}
		select {
		case <-ctx.Done():
			return first, now, ctx.Err()
		case <-time.After(e.o.countPoll):
		}
	}
}

// exactCount checks that db.events holds every event exactly once: fewer
// means lost rows, more means duplicates.
func exactCount(ctx context.Context, e *infra, db string) (uint64, error) {
	var n, ids uint64
	if err := e.Conn.QueryRow(ctx, "SELECT count(), uniqExact(message_id) FROM "+db+".events").Scan(&n, &ids); err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", db, err)
	}
	if n != uint64(e.o.events) || ids != n {
		return n, fmt.Errorf("%s.events holds %d rows with %d distinct message ids, want %d of each", db, n, ids, e.o.events)
	}
	return n, nil
}

// rawPhase inserts the rows with clickhouse-go directly into a copy of the
// template database's events table.
func rawPhase(ctx context.Context, e *infra, round int, template string, rows []tputRow) (phase, string, error) {
	o := e.o
	ph := phase{round: round, target: "raw"}
	db := e.Database(fmt.Sprintf("r%d", round))
	if template == "" {
		return ph, db, errors.New("raw phase before any sink phase made the table")
	}
	for _, stmt := range []string{"CREATE DATABASE " + db, "CREATE TABLE " + db + ".events AS " + template + ".events"} {
		if err := e.Conn.Exec(ctx, stmt); err != nil {
			return ph, db, fmt.Errorf("%s: %w", stmt, err)
		}
	}
	// The sink's connection settings, a pool of its own, dialled before
	// the clock starts as the sink dials before /readyz.
	conn, err := chx.Open(&chx.Config{Addr: o.ClickHouseServers()})
	if err != nil {
		return ph, db, err
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		return ph, db, err
	}
	// The sink phase counts rows every -count-poll; so does this one, so
	// the load those queries put on ClickHouse weighs on both.
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for pollCtx.Err() == nil {
			_, _ = benchkit.CountRows(pollCtx, e.Conn, db)
			select {
			case <-pollCtx.Done():
			case <-time.After(o.countPoll):
			}
		}
	}()
	defer func() { stopPoll(); <-polled }()
	clock := benchkit.CPUClock{cpuSelf: benchkit.Self, cpuSink: benchkit.None, cpuClickHouse: e.ClickHousePID, cpuKafka: e.KafkaPID}
	before := clock.Read()
	start := time.Now()
	for off := 0; off < len(rows); off += o.insertBatch {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".events ("+insertColumns+")")
		if err != nil {
			return ph, db, fmt.Errorf("prepare insert: %w", err)
		}
		for _, r := range rows[off:min(off+o.insertBatch, len(rows))] {
			c := &r.c
			err := batch.Append(c.MessageID, c.Type, c.Event, c.Timestamp, c.ReceivedAt, c.SourceID, c.Region,
				c.Subject, c.UserID, c.AnonymousID, c.DeviceID, c.AdvertisingID,
				c.IP, boolByte(c.DNT), boolByte(c.GPC), string(c.Context), string(c.Properties), r.keys, r.values,
				r.partition, r.offset,
				c.Purposes, c.IMEI, c.AndroidID, c.MAC, c.Country,
				c.Browser, c.BrowserVersion, c.OS, c.OSVersion, c.DeviceClass)
			if err != nil {
				_ = batch.Abort()
				return ph, db, fmt.Errorf("append: %w", err)
			}
		}
		if err := batch.Send(); err != nil {
			return ph, db, fmt.Errorf("send insert: %w", err)
		}
	}
	ph.wall = time.Since(start)
	ph.cpu = clock.Read().Since(before)
	stopPoll()
	<-polled
	ph.rows, err = exactCount(ctx, e, db)
	return ph, db, err
}

// inProcessPhase runs the sink as a component of this process (configs/
// sink.yaml, the same overrides as the binary) on a new group and database,
// under the CPU profiler, from Start until the database holds every event.
func inProcessPhase(ctx context.Context, e *infra, topic, dlq string) (phase, error) {
	o := e.o
	ph := phase{target: "sink in-process"}
	db, group := e.Database("prof"), e.Group("prof")
	cfg := chwriter.Default()
	if err := config.Load(filepath.Join(o.Root, "configs", "sink.yaml"), "SINK", &cfg); err != nil {
		return ph, err
	}
	cfg.Kafka.Brokers, cfg.ClickHouse.Addr = o.Brokers, o.ClickHouseServers()
	cfg.Topics.Clean.Name, cfg.Topics.DLQ.Name, cfg.GroupID, cfg.Database = topic, dlq, group, db
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := chwriter.New(cfg, prometheus.NewRegistry(), log)
	if err != nil {
		return ph, err
	}
	defer w.Shutdown(context.Background())
	f, err := os.Create(o.cpuProfile)
	if err != nil {
		return ph, err
	}
	defer f.Close()
	// The sink runs in this process, so its CPU time is under cpuSelf.
	clock := benchkit.CPUClock{cpuSelf: benchkit.Self, cpuSink: benchkit.None, cpuClickHouse: e.ClickHousePID, cpuKafka: e.KafkaPID}
	before := clock.Read()
	if err := pprof.StartCPUProfile(f); err != nil {
		return ph, err
	}
	start := time.Now()
	err = w.Start(ctx)
	ready := time.Now()
	ph.startup = ready.Sub(start)
	if err == nil {
		var first, done time.Time
		first, done, err = waitCount(ctx, e, db, uint64(o.events), ready, func() error { return nil })
		ph.wall, ph.firstRow = done.Sub(ready), first.Sub(ready)
	}
	pprof.StopCPUProfile()
	ph.cpu = clock.Read().Since(before)
	if err != nil {
		return ph, err
	}
	if err := w.Shutdown(ctx); err != nil {
		return ph, err
	}
	ph.rows, err = exactCount(ctx, e, db)
	return ph, err
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
