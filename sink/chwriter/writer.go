// Package chwriter is the sink: it consumes events.clean.<region> and loads
// the events into the ClickHouse database of that region, creating and
// migrating the schema at start-up and dropping months past retention.
//
// Delivery: exactly once into ClickHouse, and this paragraph is where the
// sink's delivery semantics live. Each row carries its Kafka partition and
// offset; offsets are committed after each batch, and on every partition
// assignment the sink resumes after the highest offset ClickHouse holds
// when that is further than the commit (resumeAfterStoredRows), so a crash
// between insert and commit does not insert the batch twice. A batch is
// handled in order: records that do not decode go to the dead-letter topic
// first; the rest are inserted, and if ClickHouse refuses rows for their
// content the batch is split in halves until the refused rows stand alone
// (load), each of which goes to the dead-letter topic, acknowledged, before
// any row after it in the batch is inserted. That order keeps the resume
// safe: a row past a dead-lettered one can be in ClickHouse only once the
// dead letter is in Kafka, so resuming after it never skips a record that
// is in neither place. A crash after a dead letter and before the commit
// may send that record to the dead-letter topic again when it is read
// again (when no later row of its partition was inserted): a duplicate
// there is acceptable, a loss is not. While ClickHouse fails (down,
// unreachable, a refusal not caused by the rows) the insert is retried
// with backoff, nothing more is polled (memory holds one batch and at most
// one fetch franz-go buffered; the backlog stays in Kafka), and /readyz
// fails; before each retry the sink asks ClickHouse which of the
// rows it already holds, since a failure can come after the write, and
// sends only the others. On a replicated cluster (the config's cluster)
// the resume reads every replica and a retry resends the identical block
// instead: cluster.go says why.
//
// Server versions: at start the sink reads SELECT version() and uses newer
// features only on servers that have them (see features); everything it
// sends also works on 18.16.
//
// Metrics: sink_rows_inserted_total, sink_batch_rows, sink_batch_bytes,
// sink_insert_duration_seconds, sink_insert_errors_total{kind="server|connection|rejected"},
// sink_flushes_total{reason}, sink_dead_lettered_total{reason="invalid_clean_event|rejected_by_clickhouse"},
// sink_held_records, sink_clickhouse_server_info{version},
// sink_partitions_dropped_total, sink_consumer_lag_records,
// sink_rows_suppressed_total, sink_audit_rows_inserted_total (audit.go),
// the erasure worker's (erasure.go) privacy_erasure_duration_seconds,
// privacy_erasures_pending, privacy_erasure_rows_deleted_total,
// privacy_erasure_mutations_total, privacy_erasure_failures_total and
// privacy_erasure_notices_dead_lettered_total, each with a constant
// destination label, and franz-go's client metrics under sink_.
package chwriter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/par"
)

const stage = "sink"

var _ obs.Component = (*Writer)(nil)

// Writer is the sink component.
type Writer struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	client  *kgo.Client
	conn    driver.Conn
	lag     *kafkax.Lag
	// server and features are what Start found; fixed until a restart (an
	// older path stays valid if the server is upgraded meanwhile).
	server   serverVersion
	features features
	// replicas are every server of the config's cluster, reached one by
	// one (cluster.go); nil without a cluster. Set by Start, which then
	// closes replicasKnown: the group's first assignment, and with it the
	// resume, can come before (the client joins from New on).
	replicas      []replica
	replicasKnown chan struct{}

	// erased is every pseudonym of the destination's erasure notices, kept
	// by erasedTail; the loader skips their rows.
	erased         *erasedSet
	erasedTail     *kafkax.Tail
	erasureMetrics *erasureMetrics
	eraser         *eraser
	auditor        *auditor // nil when audit.enabled is false
	// loading is held (read) by a flush from its check against erased to
	// the end of its insert; the eraser takes it (write) to wait for them.
	loading sync.RWMutex

	cancel  context.CancelFunc
	done    chan error    // the loop's result, for Done
	stopped chan struct{} // closed when the loop and retention have returned
	// insertFailing holds the last insert error while inserts are being
	// retried, for Ready; nil once one succeeds.
	insertFailing atomic.Pointer[error]
	wg            sync.WaitGroup
	shutdownOnce  sync.Once
	shutdownErr   error
}

// New builds the sink from a validated config. It does not dial until Start.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Writer, error) {
	conn, err := chx.Open(&cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	w := &Writer{cfg: cfg, log: log, metrics: newMetrics(reg), conn: conn, lag: kafkax.NewLag(reg, "sink"),
		erased: newErasedSet(), erasureMetrics: newErasureMetrics(reg, cfg.Region),
		done: make(chan error, 3), stopped: make(chan struct{}), replicasKnown: make(chan struct{})}
	if err := w.newPrivacyClients(reg); err != nil {
		w.closeClients()
		return nil, err
	}
	w.client, err = kafkax.NewClient(&cfg.Kafka, reg, "sink", log, append(w.lag.Opts(),
		kgo.ConsumerGroup(cfg.GroupID),
		kgo.ConsumeTopics(cfg.Topics.Clean.Name),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.AdjustFetchOffsetsFn(w.resumeAfterStoredRows),
	)...)
	if err != nil {
		w.closeClients()
		return nil, err
	}
	return w, nil
}

// newPrivacyClients builds the erased set's tail, the erasure worker and
// the audit loader, each with its own client: the tail reads every
// partition, the other two share partitions with other instances.
func (w *Writer) newPrivacyClients(reg prometheus.Registerer) error {
	cfg := &w.cfg
	tail, err := kafkax.NewTail(&cfg.Kafka, reg, "sink_erasure_notices", w.log, []string{cfg.Topics.Erasures.Name}, w.applyNotices)
	if err != nil {
		return err
	}
	w.erasedTail = tail
	workClient, err := kafkax.NewClient(&cfg.Kafka, reg, "sink_erasure_worker", w.log, kafkax.WorkGroup(cfg.erasureGroup(), cfg.Topics.Erasures.Name)...)
	if err != nil {
		return err
	}
	w.eraser = &eraser{cfg: cfg, log: w.log, metrics: w.erasureMetrics, erased: w.erased, client: workClient, now: time.Now,
		loadsDone: func() { w.loading.Lock(); w.loading.Unlock() },
		deleter:   &deleter{conn: w.conn, db: cfg.Database, timeout: cfg.Erasure.Timeout, log: w.log, mutations: w.erasureMetrics.mutations.Inc}}
	if !cfg.Audit.Enabled {
		return nil
	}
	auditClient, err := kafkax.NewClient(&cfg.Kafka, reg, "sink_audit", w.log, kafkax.WorkGroup(cfg.auditGroup(), cfg.Topics.Receipts.Name)...)
	if err != nil {
		return err
	}
	w.auditor = &auditor{cfg: cfg, conn: w.conn, client: auditClient, log: w.log, metrics: w.erasureMetrics}
	return nil
}

// applyNotices adds the pseudonyms of notices to the erased set. A notice
// that does not decode is the erasure worker's to dead-letter.
func (w *Writer) applyNotices(records []*kgo.Record) {
	for _, r := range records {
		if n, err := event.DecodeErasureNotice(r.Value); err == nil {
			w.erased.add(n.Pseudonyms()...)
		}
	}
}

// closeClients closes whatever New built.
func (w *Writer) closeClients() {
	if w.erasedTail != nil {
		_ = w.erasedTail.Shutdown(context.Background())
	}
	if w.eraser != nil {
		w.eraser.client.Close()
	}
	if w.auditor != nil {
		w.auditor.client.Close()
	}
	if w.client != nil {
		w.client.Close()
	}
	_ = w.conn.Close()
}

// resumeAfterStoredRows starts each assigned partition after the last row
// ClickHouse holds from it, when that is further than the committed offset.
// Offsets are committed after each insert, so a crash between the two would
// otherwise insert the batch again: with this, every record is inserted once.
// The committed offset still wins when it is further (rows since deleted by
// an erasure must not come back).
func (w *Writer) resumeAfterStoredRows(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := offsets[w.cfg.Topics.Clean.Name]
	if len(parts) == 0 {
		return offsets, nil
	}
	stored, err := w.storedOffsets(ctx)
	if err != nil {
		return nil, err // the group rejoins and asks again
	}
	for p, cur := range parts {
		last, ok := stored[p]
		if !ok {
			continue
		}
		if at := cur.EpochOffset().Offset; at < 0 || at <= last {
			parts[p] = kgo.NewOffset().At(last + 1).WithEpoch(-1)
			w.log.Info("resuming after the rows ClickHouse holds", "partition", p, "committed", at, "resume_at", last+1)
		}
	}
	return offsets, nil
}

// storedOffsets is the highest Kafka offset stored per partition: on a
// cluster, the highest over every replica, since one that lags does not
// hold all that another acknowledged (cluster.go); any replica that does
// not answer fails it.
func (w *Writer) storedOffsets(ctx context.Context) (map[int32]int64, error) {
	if w.cfg.Cluster == "" {
		return w.storedOffsetsOn(ctx, w.conn)
	}
	select {
	case <-w.replicasKnown:
	case <-ctx.Done(): // the session ends: the group rejoins and asks again
		return nil, fmt.Errorf("read stored offsets: the cluster's replicas are not known yet: %w", ctx.Err())
	}
	stored := map[int32]int64{}
	err := eachReplica(w.replicas, func(r replica) error {
		on, err := w.storedOffsetsOn(ctx, r.conn)
		for p, off := range on {
			if last, ok := stored[p]; !ok || off > last {
				stored[p] = off
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// storedOffsetsOn is storedOffsets on one server.
func (w *Writer) storedOffsetsOn(ctx context.Context, conn driver.Conn) (map[int32]int64, error) {
	rows, err := conn.Query(ctx, storedOffsetsQuery(w.cfg.Database))
	var ex *clickhouse.Exception
	switch {
	case errors.As(err, &ex) && slices.Contains(noEventsTable, ex.Code): // nothing stored
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read stored offsets: %w", err)
	}
	defer rows.Close()
	stored := map[int32]int64{}
	for rows.Next() {
		var p int32
		var off int64
		if err := rows.Scan(&p, &off); err != nil {
			return nil, fmt.Errorf("read stored offsets: %w", err)
		}
		stored[p] = off
	}
	return stored, rows.Err()
}

// Start creates or checks topics and schema, then consumes in the background.
func (w *Writer) Start(ctx context.Context) error {
	t := w.cfg.Topics
	if err := kafkax.EnsureTopics(ctx, w.client, []kafkax.TopicSpec{t.DLQ}, []kafkax.TopicSpec{t.Clean, t.Erasures, t.Receipts}, w.log); err != nil {
		return fmt.Errorf("sink topics: %w", err)
	}
	server, err := detectServer(ctx, w.conn)
	if err != nil {
		return fmt.Errorf("clickhouse %v: %w", w.cfg.ClickHouse.Addr, err)
	}
	w.server, w.features = server, featuresOf(server)
	w.metrics.setServer(server)
	w.log.Info("clickhouse server", "version", server.String(),
		"add_column_if_not_exists", w.features.addColumnIfNotExists, "insert_partition_limit", w.features.insertPartitionLimit)
	schema, err := w.migrate(ctx)
	if err != nil {
		return fmt.Errorf("clickhouse schema: %w", err)
	}
	// Every erased subject is known before the first row is loaded.
	if err := w.erasedTail.Start(ctx); err != nil {
		return fmt.Errorf("read erasure notices: %w", err)
	}
	w.log.Info("erased subjects loaded", "pseudonyms", w.erased.len())
	runCtx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	loops := []func(context.Context) error{w.run, w.eraser.run}
	if w.auditor != nil {
		loops = append(loops, w.auditor.run)
	}
	for _, loop := range loops {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			if err := loop(runCtx); err != nil {
				w.done <- err
			}
		}()
	}
	if w.cfg.Retention.Months > 0 {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.runRetention(runCtx)
		}()
	}
	go func() {
		w.wg.Wait()
		close(w.stopped)
	}()
	w.log.Info("sink consuming", "from", t.Clean.Name, "database", w.cfg.Database, "schema_version", schema, "clickhouse", server.String())
	return nil
}

// migrate brings the schema up to date on the server, or on every replica
// of the cluster, and checks the events table's columns there.
func (w *Writer) migrate(ctx context.Context) (uint32, error) {
	db := w.cfg.Database
	if w.cfg.Cluster == "" {
		schema, err := migrate(ctx, w.conn, db, w.features)
		if err != nil {
			return 0, err
		}
		return schema, checkColumns(ctx, w.conn, db)
	}
	if w.replicas == nil {
		rs, err := discoverReplicas(ctx, w.conn, &w.cfg.ClickHouse, w.cfg.Cluster)
		if err != nil {
			return 0, err
		}
		w.replicas = rs
		w.eraser.deleter.replicas = rs
		close(w.replicasKnown)
		w.log.Info("clickhouse cluster", "cluster", w.cfg.Cluster, "replicas", len(rs))
	}
	schema, err := migrateCluster(ctx, w.replicas, db, w.cfg.Cluster, w.features)
	if err != nil {
		return 0, err
	}
	return schema, eachReplica(w.replicas, func(r replica) error { return checkColumns(ctx, r.conn, db) })
}

// Done yields the loop's error if it stops on its own.
func (w *Writer) Done() <-chan error { return w.done }

// Ready reports whether both Kafka and ClickHouse answer.
func (w *Writer) Ready(ctx context.Context) error {
	if err := w.client.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if err := w.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	// ClickHouse may answer pings and still refuse every insert.
	if err := w.insertFailing.Load(); err != nil {
		return fmt.Errorf("clickhouse inserts failing, retrying: %w", *err)
	}
	return nil
}

// Shutdown stops the loop (an uninserted batch is not committed and will be
// replayed), leaves the group, closes Kafka and ClickHouse. Idempotent and
// safe without Start.
func (w *Writer) Shutdown(ctx context.Context) error {
	w.shutdownOnce.Do(func() {
		var errs []error
		if w.cancel != nil {
			w.cancel()
			select {
			case <-w.stopped:
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("sink loop did not stop: %w", ctx.Err()))
			}
		}
		w.client.AllowRebalance()
		w.eraser.client.AllowRebalance()
		if w.auditor != nil {
			w.auditor.client.AllowRebalance()
		}
		errs = append(errs, w.erasedTail.Shutdown(ctx))
		w.eraser.client.Close()
		if w.auditor != nil {
			w.auditor.client.Close()
		}
		w.client.Close()
		errs = append(errs, w.conn.Close())
		closeReplicas(w.replicas)
		w.shutdownErr = errors.Join(errs...)
	})
	return w.shutdownErr
}

func (w *Writer) run(ctx context.Context) error {
	for {
		batch, reason := w.collect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if len(batch.records) > 0 {
			if err := w.flush(ctx, batch, reason); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		w.client.AllowRebalance()
	}
}

// collect polls until batch.max_rows records or batch.max_bytes of values
// are in hand, or batch.max_wait has passed since the first one arrived.
func (w *Writer) collect(ctx context.Context) (*batch, string) {
	b := &batch{}
	var size int64
	var deadline time.Time
	for {
		fetches := w.poll(ctx, deadline, w.cfg.Batch.MaxRows-len(b.records))
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return b, ""
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				w.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
			}
		})
		w.lag.Observe(fetches)
		got := fetches.Records()
		if len(b.records) == 0 && len(got) > 0 {
			deadline = time.Now().Add(w.cfg.Batch.MaxWait)
			if w.lag.Behind() < int64(w.cfg.Batch.MaxRows/10) {
				// Not catching up on a backlog: be fresh.
				deadline = batchDeadline(got, w.cfg.Batch.MaxWait, time.Now())
			}
		}
		b.add(got)
		w.metrics.heldRecords.Set(float64(len(b.records)))
		for _, r := range got {
			size += int64(len(r.Value))
		}
		switch {
		case len(b.records) >= w.cfg.Batch.MaxRows:
			return b, "rows"
		case size >= w.cfg.Batch.MaxBytes:
			return b, "bytes"
		case len(b.records) > 0 && !time.Now().Before(deadline):
			return b, "time"
		}
	}
}

// batch is the records collected for one insert, decoded in the background
// as they are polled: decoding is a fifth of the sink's CPU, and this way
// it overlaps fetching instead of following it.
type batch struct {
	records []*kgo.Record
	chunks  []*chunk // one per poll, in order
	decoded sync.WaitGroup
}

// chunk is one poll's records and what they decode to.
type chunk struct {
	records []*kgo.Record
	rows    []row
	failed  []error
}

// add starts decoding a poll's records on every core.
func (b *batch) add(got []*kgo.Record) {
	if len(got) == 0 {
		return
	}
	b.records = append(b.records, got...)
	c := &chunk{records: got, rows: make([]row, len(got)), failed: make([]error, len(got))}
	b.chunks = append(b.chunks, c)
	b.decoded.Go(func() {
		par.Range(len(got), 256, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				c.rows[i], c.failed[i] = decodeRow(got[i])
			}
		})
	})
}

// wait returns once every chunk is decoded.
func (b *batch) wait() { b.decoded.Wait() }

// batchDeadline is when a batch opened with first must be flushed: max_wait
// after the oldest of them was produced, so records that waited in Kafka
// while the previous batch was inserted do not wait a whole max_wait more.
// It is never sooner than a quarter of max_wait from now, so a batch is
// not a handful of rows, and never later than max_wait from now, whatever
// the producer's clock says. Catching up on a backlog, collect waits the
// whole max_wait instead: polls return at once, and batches fill.
func batchDeadline(first []*kgo.Record, maxWait time.Duration, now time.Time) time.Time {
	oldest := now
	for _, r := range first {
		if !r.Timestamp.IsZero() && r.Timestamp.Before(oldest) {
			oldest = r.Timestamp
		}
	}
	if floor := now.Add(maxWait / 4); oldest.Add(maxWait).Before(floor) {
		return floor
	}
	return oldest.Add(maxWait)
}

// poll waits for up to max records, until deadline if one is set (a batch
// is open) or else for as long as it takes.
func (w *Writer) poll(ctx context.Context, deadline time.Time, max int) kgo.Fetches {
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	return w.client.PollRecords(ctx, max)
}

// flush dead-letters what does not decode, skips the rows of erased
// subjects, loads the rest, then commits: the order the package doc's
// Delivery paragraph explains.
func (w *Writer) flush(ctx context.Context, b *batch, reason string) error {
	records := b.records
	rows := make([]*row, 0, len(records)) // pointers: a row is a few hundred bytes
	var dead []*kgo.Record
	suppressed := 0
	b.wait()
	w.loading.RLock()
	defer w.loading.RUnlock()
	for _, c := range b.chunks {
		for i, rec := range c.records {
			if c.failed[i] != nil {
				dead = append(dead, kafkax.DeadLetter(rec, w.cfg.Topics.DLQ.Name, stage, reasonInvalid, c.failed[i]))
				continue
			}
			if w.erased.erasedRow(&c.rows[i].clean) {
				suppressed++
				continue
			}
			rows = append(rows, &c.rows[i])
		}
	}
	w.erasureMetrics.suppressed.Add(float64(suppressed))
	if err := w.deadLetter(ctx, reasonInvalid, dead...); err != nil {
		return err
	}
	if len(rows) > 0 {
		if err := w.load(ctx, rows); err != nil {
			return err
		}
		w.eraseLate(rows)
	}
	w.metrics.flushes.WithLabelValues(reason).Inc()
	var size int
	for _, rec := range records {
		size += len(rec.Value)
	}
	w.metrics.batchBytes.Observe(float64(size))
	if err := w.client.CommitRecords(ctx, records...); err != nil {
		w.log.Warn("commit failed; batch will be replayed", "err", err)
	}
	w.metrics.heldRecords.Set(0)
	return nil
}

// eraseLate hands the eraser the subjects of the rows just loaded that
// were erased while they were: another sink instance's eraser cannot wait
// for this one's loads, so this instance's next window deletes what its
// own erased set learned of meanwhile. (Within one instance the eraser
// waits for the load, and the next window finds nothing: its count costs
// a query, not a mutation.)
func (w *Writer) eraseLate(rows []*row) {
	var late subjects
	for i := range rows {
		c := &rows[i].clean
		if !w.erased.erasedRow(c) {
			continue
		}
		// The subject is the user's pseudonym or the anonymous one.
		if c.UserID != "" {
			late.users = append(late.users, c.UserID)
		}
		if c.AnonymousID != "" || c.UserID == "" {
			late.anonymous = append(late.anonymous, cmp.Or(c.AnonymousID, c.Subject))
		}
	}
	if len(late.users)+len(late.anonymous) > 0 {
		w.eraser.addLate(late)
	}
}
