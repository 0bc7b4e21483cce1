package chwriter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/retry"
)

// Kinds of failed insert, the values of sink_insert_errors_total's label.
const (
	kindConnection = "connection"
	kindServer     = "server"
	kindRejected   = "rejected"
)

// outcome is what a failed insert calls for.
type outcome int

const (
	// retryLater: the same rows again after a backoff. ClickHouse is down,
	// unreachable, overloaded or misconfigured; time (or an operator) cures
	// it, and the partition waits rather than lose anything.
	retryLater outcome = iota
	// split: the rows themselves are refused; try each half on its own.
	split
	// deadLetter: the single row left is refused; it goes to the DLQ.
	deadLetter
)

// contentCodes are the ClickHouse exception codes that the values of the
// rows inserted raise, whatever the server's state: parsing and converting
// a value (in a DEFAULT or MATERIALIZED expression an operator added, for
// instance), a value out of a type's range, a CHECK constraint (19.14+),
// throwIf. The same rows fail the same way on every attempt, so retrying
// would block their partition for good. Any code not listed is retried:
// mistaking a refusal for an outage stalls a partition (visible in
// /readyz and the lag); the reverse would dead-letter good rows.
var contentCodes = map[int32]string{
	6:   "CANNOT_PARSE_TEXT",
	25:  "CANNOT_PARSE_ESCAPE_SEQUENCE",
	26:  "CANNOT_PARSE_QUOTED_STRING",
	27:  "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
	32:  "ATTEMPT_TO_READ_AFTER_EOF", // toUInt32('') and kin: text too short to parse
	38:  "CANNOT_PARSE_DATE",
	41:  "CANNOT_PARSE_DATETIME",
	69:  "ARGUMENT_OUT_OF_BOUND",
	70:  "CANNOT_CONVERT_TYPE",
	72:  "CANNOT_PARSE_NUMBER",
	128: "TOO_LARGE_ARRAY_SIZE",
	131: "TOO_LARGE_STRING_SIZE",
	153: "ILLEGAL_DIVISION",
	190: "SIZES_OF_ARRAYS_DOESNT_MATCH",
	321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
	376: "CANNOT_PARSE_UUID",
	395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
	407: "DECIMAL_OVERFLOW",
	441: "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
	467: "CANNOT_PARSE_BOOL",
	469: "VIOLATED_CONSTRAINT",
}

// codeTooManyParts is TOO_MANY_PARTS: merges lag behind inserts, or (19.5+)
// one insert spans more than max_partitions_per_insert_block months.
const codeTooManyParts = 252

// classify decides what a failed insert of n rows calls for, and the kind
// of failure it counts as.
func classify(err error, n int, f features) (outcome, string) {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return retryLater, kindConnection
	}
	if _, ok := contentCodes[ex.Code]; ok {
		if n == 1 {
			return deadLetter, kindRejected
		}
		return split, kindRejected
	}
	// One row lies in one month, so a single row refused with
	// TOO_MANY_PARTS means the merges are behind: wait for them.
	if ex.Code == codeTooManyParts && f.insertPartitionLimit && n > 1 {
		return split, kindRejected
	}
	return retryLater, kindServer
}

// refusal is ClickHouse's refusal of a row for its content. ClickHouse's
// message quotes the value it could not take ("Cannot parse string
// '...' as UInt32"), so only the exception's code and name go further
// than the error itself: to the dead letter and the log (kafkax.Redacter).
type refusal struct {
	err  error
	code int32
}

func refusalOf(err error) *refusal {
	r := &refusal{err: err}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		r.code = ex.Code
	}
	return r
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// RedactedError names the exception, not what the row held.
func (r *refusal) RedactedError() string {
	return fmt.Sprintf("ClickHouse refused the row: code %d (%s)", r.code, cmp.Or(contentCodes[r.code], "unknown"))
}

// errorKind tells a refusal by ClickHouse from a failure to reach it.
func errorKind(err error) string {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return kindServer
	}
	return kindConnection
}

// load inserts rows, in order, until each is stored in ClickHouse or in
// the DLQ. What time may cure is retried with backoff; a refusal of the
// rows themselves splits them in halves, left before right, down to the
// single rows refused, which go to the DLQ before any row after them is
// inserted (see the package doc for why that order matters).
func (w *Writer) load(ctx context.Context, rows []*row) error {
	rows, refused, err := w.insertRetrying(ctx, rows)
	if err != nil || refused == nil {
		return err
	}
	if len(rows) == 1 {
		r, refusal := rows[0], refusalOf(refused)
		w.log.Warn("ClickHouse rejected a row; sending it to the dead-letter topic",
			"partition", r.partition, "offset", r.offset, "err", refusal.RedactedError())
		return w.deadLetter(ctx, reasonRejected, kafkax.DeadLetter(r.rec, w.cfg.Topics.DLQ.Name, stage, reasonRejected, refusal))
	}
	half := len(rows) / 2
	if err := w.load(ctx, rows[:half]); err != nil {
		return err
	}
	return w.load(ctx, rows[half:])
}

// insertRetrying inserts rows, retrying with backoff what time may cure,
// until they are stored (refused and err nil), ClickHouse refuses them for
// what they hold (refused set, with the rows it refused), or ctx ends (err
// set).
//
// A failure may come after ClickHouse stored the rows: the connection
// lost, or the server killed, between its write and its answer. So after
// any failure, before trying again, it asks ClickHouse which of the rows
// it holds and sends only the others; inserting again blindly would store
// those twice. The rows refused are then those others only. On a cluster
// it sends the same rows again instead (cluster.go).
func (w *Writer) insertRetrying(ctx context.Context, rows []*row) (left []*row, refused, err error) {
	unsure := false
	err = retry.Default.Do(ctx, func(ctx context.Context) error {
		// On a cluster the replica that took the rows may be the one that
		// is gone: the identical block goes again, and the replicated
		// table's de-duplication drops it if any replica committed it
		// (cluster.go).
		if unsure && w.replicas == nil {
			missing, err := w.notStored(ctx, rows)
			if err != nil {
				return err
			}
			rows, unsure = missing, false
			if len(rows) == 0 {
				w.insertFailing.Store(nil)
				return nil
			}
		}
		err := w.insert(ctx, rows)
		if err == nil {
			w.insertFailing.Store(nil)
			return nil
		}
		what, kind := classify(err, len(rows), w.features)
		if what != retryLater {
			// ClickHouse answers: it is the rows, not the server.
			w.metrics.insertErrors.WithLabelValues(kind).Inc()
			w.insertFailing.Store(nil)
			refused = err
			return nil // stop retrying: splitting cures this, time does not
		}
		unsure = true
		return err
	}, func(err error, wait time.Duration) {
		w.metrics.insertErrors.WithLabelValues(errorKind(err)).Inc()
		w.insertFailing.Store(&err)
		w.log.Warn("insert failed; retrying", "rows", len(rows), "wait", wait, "err", err)
	})
	return rows, refused, err
}

// notStored returns the rows that ClickHouse does not hold, matching them
// by Kafka partition and offset (notStoredQuery).
func (w *Writer) notStored(ctx context.Context, rows []*row) ([]*row, error) {
	res, err := w.conn.Query(ctx, notStoredQuery(w.cfg.Database, rows))
	if err != nil {
		return nil, fmt.Errorf("look up rows already stored: %w", err)
	}
	defer res.Close()
	type key struct {
		partition int32
		offset    int64
	}
	stored := map[key]bool{}
	for res.Next() {
		var k key
		if err := res.Scan(&k.partition, &k.offset); err != nil {
			return nil, fmt.Errorf("look up rows already stored: %w", err)
		}
		stored[k] = true
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("look up rows already stored: %w", err)
	}
	if len(stored) == 0 {
		return rows, nil
	}
	missing := make([]*row, 0, len(rows)-len(stored))
	for _, r := range rows {
		if !stored[key{r.partition, r.offset}] {
			missing = append(missing, r)
		}
	}
	w.log.Info("a failed insert had stored rows; sending only the others", "stored", len(rows)-len(missing), "missing", len(missing))
	return missing, nil
}

// deadLetter produces records to the DLQ and waits until Kafka has
// acknowledged them, retrying until it does: the caller commits their
// offsets next, and a record committed but not in the DLQ would be lost. A
// retry after a produce that failed half way may put a record in the DLQ
// twice; a duplicate there is harmless, a loss is not.
func (w *Writer) deadLetter(ctx context.Context, reason string, dead ...*kgo.Record) error {
	if len(dead) == 0 {
		return nil
	}
	err := retry.Default.Do(ctx, func(ctx context.Context) error {
		return w.client.ProduceSync(ctx, dead...).FirstErr()
	}, func(err error, wait time.Duration) {
		w.log.Warn("dead-letter produce failed; retrying", "records", len(dead), "wait", wait, "err", err)
	})
	if err != nil {
		return err
	}
	w.metrics.deadLettered.WithLabelValues(reason).Add(float64(len(dead)))
	return nil
}
