package chwriter

// The erasure worker carries out the erasure notices of the sink's
// destination (topics.erasures, privacy.erasures.<destination>): it deletes
// the subjects' rows, checks that none remain and writes a receipt per
// notice to privacy.receipts.
//
// Delivery: at least once, and this paragraph is where the sink's erasure
// semantics live. Notices gather for erasure.window (or until
// erasure.max_subjects arrived); their pseudonyms join the erased set at
// once, so the loader stops inserting those subjects' rows from the next
// batch on. Then one ALTER TABLE ... DELETE covers the whole window; the
// worker waits until ClickHouse has no unfinished mutation on the table
// (system.mutations, which 18.16 has) and counts the subjects' rows again.
// A batch that was being inserted while the mutation started can leave
// rows behind; they are found by that count and deleted by another
// mutation. Only when the count is zero are the receipts written and the
// notices' offsets committed. A crash before the commit repeats the
// deletion, which finds nothing and writes the same receipts again.
//
// The erased set holds every notice of the topic (kafkax.Tail reads it
// from the beginning at start, before the loader starts), so replaying the
// clean topic never brings an erased subject's rows back, whichever
// instance took which partition. It keeps 8 bytes per pseudonym.

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/retry"
)

// maxSubjectsPerMutation bounds erasure.max_subjects: the mutation's text
// holds every pseudonym, and ClickHouse keeps it in memory while it runs.
const maxSubjectsPerMutation = 10000

// maxPseudonymsPerStatement bounds the pseudonyms of one statement: each
// is written twice (subject, and its own column), and 18.16 refuses an
// expression of more than 50,000 elements (code 168). A window or a
// notice with more is deleted in several statements.
const maxPseudonymsPerStatement = 10000

// reasonInvalidNotice: an erasure notice that does not decode.
const reasonInvalidNotice = "invalid_erasure_notice"

// erasedSet is every pseudonym of the destination's notices, as 64-bit
// hashes: a collision would drop an innocent row with odds of about
// n/2^64, which is nothing next to what a full string would cost in memory.
type erasedSet struct {
	seed maphash.Seed
	mu   sync.RWMutex
	m    map[uint64]struct{}
}

func newErasedSet() *erasedSet {
	return &erasedSet{seed: maphash.MakeSeed(), m: map[uint64]struct{}{}}
}

func (s *erasedSet) add(pseudonyms ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pseudonyms {
		s.m[maphash.String(s.seed, p)] = struct{}{}
	}
}

// has reports whether p was erased; never for "".
func (s *erasedSet) has(p string) bool {
	if p == "" {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.m[maphash.String(s.seed, p)]
	return ok
}

func (s *erasedSet) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// erasedRow reports whether the row belongs to an erased subject. A coarse
// (export) profile keeps the subject's pseudonym only.
func (s *erasedSet) erasedRow(c *event.Clean) bool {
	return s.has(c.Subject) || s.has(c.UserID) || s.has(c.AnonymousID)
}

// deleter deletes subjects' rows from one database's events table.
type deleter struct {
	conn driver.Conn
	// replicas, on a cluster, are where the deletion is verified: the
	// mutation is issued once on conn and replicated, and counted and
	// awaited on each replica (cluster.go). Nil: on conn only.
	replicas []replica
	db       string
	timeout  time.Duration
	log      *slog.Logger
	// mutations counts the ALTER TABLE ... DELETE issued.
	mutations func()
}

// matchCount is how many rows hold one (subject, user, anonymous)
// pseudonym triple.
type matchCount struct {
	subject, user, anonymous string
	rows                     int64
}

// subjects are the pseudonyms one deletion covers, by column.
type subjects struct {
	users, anonymous []string
}

func (s *subjects) add(n *event.ErasureNotice) {
	s.users = append(s.users, n.Users...)
	s.anonymous = append(s.anonymous, n.AnonymousIDs...)
}

func (s *subjects) where() (string, []any) { return chx.SubjectsWhere(s.users, s.anonymous) }

// chunks splits s into pieces of at most max pseudonyms.
func (s *subjects) chunks(max int) []subjects {
	var out []subjects
	users, anonymous := s.users, s.anonymous
	for len(users)+len(anonymous) > 0 {
		var c subjects
		n := min(len(users), max)
		c.users, users = users[:n], users[n:]
		n = min(len(anonymous), max-len(c.users))
		c.anonymous, anonymous = anonymous[:n], anonymous[n:]
		out = append(out, c)
	}
	return out
}

// erase deletes the subjects' rows until a count finds none, and returns
// what each round found and how many mutations it took, also on error (so
// a retry can add to them rather than forget them).
func (d *deleter) erase(ctx context.Context, s *subjects) ([]matchCount, int, error) {
	var found []matchCount
	mutations := 0
	for _, c := range s.chunks(maxPseudonymsPerStatement) {
		for round := 0; ; round++ {
			counts, err := d.count(ctx, &c)
			if err != nil {
				return found, mutations, err
			}
			if len(counts) == 0 {
				break
			}
			if round == 3 {
				return found, mutations, fmt.Errorf("%d row groups of the subjects remain after %d mutations", len(counts), round)
			}
			found = append(found, counts...)
			stmt, args := deleteStatement(d.db, &c)
			if err := d.conn.Exec(chx.LargeQuery(ctx), stmt, args...); err != nil {
				return found, mutations, fmt.Errorf("delete rows: %w", err)
			}
			mutations++
			d.mutations()
			if err := d.waitMutations(ctx); err != nil {
				return found, mutations, err
			}
		}
	}
	return found, mutations, nil
}

// count lists the subjects' rows by pseudonym triple: on a cluster, the
// most any replica holds of each, so that a replica the mutation has not
// reached yet keeps the deletion going.
func (d *deleter) count(ctx context.Context, s *subjects) ([]matchCount, error) {
	if d.replicas == nil {
		return d.countOn(ctx, d.conn, s)
	}
	type triple struct{ subject, user, anonymous string }
	most := map[triple]int64{}
	var order []triple
	err := eachReplica(d.replicas, func(r replica) error {
		counts, err := d.countOn(ctx, r.conn, s)
		for _, m := range counts {
			k := triple{m.subject, m.user, m.anonymous}
			if _, ok := most[k]; !ok {
				order = append(order, k)
			}
			most[k] = max(most[k], m.rows)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]matchCount, 0, len(order))
	for _, k := range order {
		out = append(out, matchCount{subject: k.subject, user: k.user, anonymous: k.anonymous, rows: most[k]})
	}
	return out, nil
}

// countOn is count on one server.
func (d *deleter) countOn(ctx context.Context, conn driver.Conn, s *subjects) ([]matchCount, error) {
	query, args := subjectsCountQuery(d.db, s)
	rows, err := conn.Query(chx.LargeQuery(ctx), query, args...)
	if err != nil {
		return nil, fmt.Errorf("count the subjects' rows: %w", err)
	}
	defer rows.Close()
	var out []matchCount
	for rows.Next() {
		var m matchCount
		var n uint64
		if err := rows.Scan(&m.subject, &m.user, &m.anonymous, &n); err != nil {
			return nil, fmt.Errorf("count the subjects' rows: %w", err)
		}
		m.rows = int64(n)
		out = append(out, m)
	}
	return out, rows.Err()
}

// waitMutations returns once no mutation of the events table is unfinished
// (on every replica of a cluster). Mutations run in order, so ours is done
// then, whoever issued the others.
func (d *deleter) waitMutations(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if d.replicas == nil {
		return d.waitMutationsOn(ctx, d.conn)
	}
	return eachReplica(d.replicas, func(r replica) error { return d.waitMutationsOn(ctx, r.conn) })
}

// waitMutationsOn is waitMutations on one server, within ctx's deadline.
func (d *deleter) waitMutationsOn(ctx context.Context, conn driver.Conn) error {
	for polls := 0; ; polls++ {
		var pending uint64
		query, args := pendingMutationsQuery(d.db)
		err := conn.QueryRow(ctx, query, args...).Scan(&pending)
		if err != nil {
			return fmt.Errorf("read system.mutations: %w", err)
		}
		if pending == 0 {
			return nil
		}
		if err := mutationPolls.Wait(ctx, polls); err != nil {
			return fmt.Errorf("%d mutations of %s.events unfinished after %v (erasure.timeout): %w", pending, d.db, d.timeout, err)
		}
	}
}

// matches reports whether the row group m belongs to notice n.
func (m *matchCount) matches(n *event.ErasureNotice) bool {
	return slices.Contains(n.Users, m.user) || slices.Contains(n.AnonymousIDs, m.anonymous) ||
		slices.Contains(n.Users, m.subject) || slices.Contains(n.AnonymousIDs, m.subject)
}

// rowsByNotice is how many of the found rows each notice gets. A row group
// counts once per request: a request naming a userId and an anonymousId
// linked to it has two notices that both match the device's rows.
func rowsByNotice(notices []pending, found []matchCount) []int64 {
	out := make([]int64, len(notices))
	counted := map[string]map[int]bool{} // request id -> found index
	for i := range notices {
		n := &notices[i].notice
		if counted[n.RequestID] == nil {
			counted[n.RequestID] = map[int]bool{}
		}
		for j := range found {
			if !counted[n.RequestID][j] && found[j].matches(n) {
				counted[n.RequestID][j] = true
				out[i] += found[j].rows
			}
		}
	}
	return out
}

// eraser is the erasure worker: a consumer group on the notices, so
// several sink instances share the work.
type eraser struct {
	cfg     *Config
	log     *slog.Logger
	metrics *erasureMetrics
	erased  *erasedSet
	deleter *deleter
	client  *kgo.Client
	now     func() time.Time
	// loadsDone returns once every load that began before the call has
	// ended: a batch checked against the erased set before a notice's
	// pseudonyms joined it must be in ClickHouse before the deletion.
	loadsDone func()

	// late are the subjects of rows a load inserted while their erasure was
	// under way (see Writer.eraseLate): the next window deletes them too.
	lateMu sync.Mutex
	late   subjects
}

// addLate hands the eraser rows' subjects to delete in its next window.
func (e *eraser) addLate(s subjects) {
	e.lateMu.Lock()
	defer e.lateMu.Unlock()
	e.late.users = append(e.late.users, s.users...)
	e.late.anonymous = append(e.late.anonymous, s.anonymous...)
}

// takeLate empties the late subjects.
func (e *eraser) takeLate() subjects {
	e.lateMu.Lock()
	defer e.lateMu.Unlock()
	s := e.late
	e.late = subjects{}
	return s
}

func (e *eraser) hasLate() bool {
	e.lateMu.Lock()
	defer e.lateMu.Unlock()
	return len(e.late.users)+len(e.late.anonymous) > 0
}

// progress is what a window's deletion found and did, kept across its
// attempts.
type progress struct {
	// late are subjects to delete with the window's, without notices.
	late      subjects
	found     []matchCount
	mutations int
	// failedReported says the window's failed receipts were written.
	failedReported bool
}

// failedAfter is the failed attempts of a window before its requests'
// receipts say failed (the deletion goes on being retried).
const failedAfter = 3

// privacyBackoff spaces the retries of a window's deletion and of an
// audit insert: slower than the loader's retry.Default, as each attempt
// of a deletion costs ClickHouse a mutation that rewrites parts, and
// neither is on the path of the events.
var privacyBackoff = retry.Backoff{Initial: time.Second, Max: 30 * time.Second}

// mutationPolls spaces the reads of system.mutations: a small deletion is
// done in tens of milliseconds, a large one in seconds.
var mutationPolls = retry.Backoff{Initial: 20 * time.Millisecond, Max: time.Second}

// pending is one notice waiting for its window's deletion.
type pending struct {
	notice  event.ErasureNotice
	subject string // the record key: the subject's pseudonym
}

func (e *eraser) run(ctx context.Context) error {
	for {
		notices, records, err := e.collect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		done := progress{late: e.takeLate()}
		for attempt := 0; len(notices) > 0 || len(done.late.users)+len(done.late.anonymous) > 0; attempt++ {
			err := e.carryOut(ctx, notices, &done)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			e.metrics.failures.Inc()
			if attempt+1 >= failedAfter && !done.failedReported {
				done.failedReported = e.reportFailed(ctx, notices, err)
			}
			e.log.Warn("erasure not verified; retrying", "notices", len(notices), "attempt", attempt+1, "in", privacyBackoff.Delay(attempt), "err", err)
			if privacyBackoff.Wait(ctx, attempt) != nil {
				return nil
			}
		}
		if len(records) > 0 {
			if err := e.client.CommitRecords(ctx, records...); err != nil {
				e.log.Warn("commit of erasure notices failed; they will be carried out again", "err", err)
			}
		}
		e.client.AllowRebalance()
	}
}

// collect polls the notices of one window, which opens with the first
// notice or late subject. Notices that do not decode go to the dead-letter
// topic at once.
func (e *eraser) collect(ctx context.Context) ([]pending, []*kgo.Record, error) {
	var notices []pending
	var records []*kgo.Record
	var deadline time.Time
	pseudonyms := 0
	for len(notices) < e.cfg.Erasure.MaxSubjects && pseudonyms < maxPseudonymsPerStatement {
		// Idle, the poll still ends every window, to notice late subjects.
		until := deadline
		if until.IsZero() {
			until = time.Now().Add(e.cfg.Erasure.Window)
		}
		pollCtx, cancel := context.WithDeadline(ctx, until)
		fetches := e.client.PollRecords(pollCtx, e.cfg.Erasure.MaxSubjects-len(notices))
		cancel()
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil, nil, nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				e.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
			}
		})
		var dead []*kgo.Record
		for _, r := range fetches.Records() {
			records = append(records, r)
			n, err := event.DecodeErasureNotice(r.Value)
			if err != nil {
				dead = append(dead, kafkax.DeadLetter(r, e.cfg.Topics.DLQ.Name, stage, reasonInvalidNotice, fmt.Errorf("decode erasure notice: %w", err)))
				continue
			}
			e.erased.add(n.Pseudonyms()...)
			pseudonyms += len(n.Users) + len(n.AnonymousIDs)
			notices = append(notices, pending{notice: n, subject: string(r.Key)})
			e.metrics.pending.Inc()
		}
		if len(dead) > 0 {
			if err := e.client.ProduceSync(ctx, dead...).FirstErr(); err != nil {
				return nil, nil, fmt.Errorf("dead-letter erasure notices: %w", err)
			}
			e.metrics.deadLettered.Add(float64(len(dead)))
		}
		if deadline.IsZero() && (len(records) > 0 || e.hasLate()) {
			deadline = time.Now().Add(e.cfg.Erasure.Window)
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			break
		}
	}
	return notices, records, nil
}

// carryOut deletes the window's subjects, then writes a receipt per notice.
// p carries what earlier attempts of the window deleted.
func (e *eraser) carryOut(ctx context.Context, notices []pending, p *progress) error {
	all := subjects{users: slices.Clone(p.late.users), anonymous: slices.Clone(p.late.anonymous)}
	for i := range notices {
		all.add(&notices[i].notice)
	}
	e.loadsDone()
	found, mutations, err := e.deleter.erase(ctx, &all)
	p.found, p.mutations = append(p.found, found...), p.mutations+mutations
	if err != nil {
		return err
	}
	at := e.now().UTC()
	receipts := make([]*kgo.Record, 0, len(notices))
	var deleted int64
	for _, m := range p.found {
		deleted += m.rows
	}
	rows := rowsByNotice(notices, p.found)
	for i := range notices {
		n := &notices[i].notice
		r := event.Receipt{SchemaVersion: event.SchemaVersion, RequestID: n.RequestID, Kind: event.ReceiptErasure,
			Stage: event.StageSink, Destination: e.cfg.Region, Status: event.StatusDeleted, Reason: n.Reason,
			Subject: notices[i].subject, RequestedAt: n.RequestedAt, At: at, Rows: rows[i], Mutations: p.mutations}
		rec, err := receiptRecord(e.cfg.Topics.Receipts.Name, &r)
		if err != nil {
			return err
		}
		receipts = append(receipts, rec)
	}
	if err := e.client.ProduceSync(ctx, receipts...).FirstErr(); err != nil {
		return fmt.Errorf("write erasure receipts: %w", err)
	}
	e.metrics.rowsDeleted.Add(float64(deleted))
	for i := range notices {
		e.metrics.latency.Observe(at.Sub(notices[i].notice.RequestedAt).Seconds())
	}
	e.metrics.pending.Sub(float64(len(notices)))
	e.log.Info("erasures carried out", "notices", len(notices), "rows_deleted", deleted, "mutations", p.mutations)
	return nil
}

// reportFailed writes a failed receipt per notice, so the status says why
// the deletion is late; the deletion is still retried, and its deleted
// receipt replaces these. It reports whether they were written.
func (e *eraser) reportFailed(ctx context.Context, notices []pending, cause error) bool {
	at := e.now().UTC()
	var records []*kgo.Record
	for i := range notices {
		n := &notices[i].notice
		r := event.Receipt{SchemaVersion: event.SchemaVersion, RequestID: n.RequestID, Kind: event.ReceiptErasure,
			Stage: event.StageSink, Destination: e.cfg.Region, Status: event.StatusFailed, Reason: n.Reason,
			Subject: notices[i].subject, RequestedAt: n.RequestedAt, At: at, Error: cause.Error()}
		rec, err := receiptRecord(e.cfg.Topics.Receipts.Name, &r)
		if err != nil {
			return false
		}
		records = append(records, rec)
	}
	if err := e.client.ProduceSync(ctx, records...).FirstErr(); err != nil {
		e.log.Warn("failed receipts not written", "err", err)
		return false
	}
	return true
}

// receiptRecord is r as a privacy.receipts record.
func receiptRecord(topic string, r *event.Receipt) (*kgo.Record, error) {
	value, err := event.EncodeReceipt(r)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Key: []byte(r.Key()), Value: value}, nil
}
