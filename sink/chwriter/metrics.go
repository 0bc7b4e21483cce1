package chwriter

import "github.com/prometheus/client_golang/prometheus"

// Dead-letter reasons, the values of sink_dead_lettered_total's reason
// label and of the dlq.reason header.
const (
	// reasonInvalid: the record does not decode as a clean event.
	reasonInvalid = "invalid_clean_event"
	// reasonRejected: ClickHouse refused the row for its content.
	reasonRejected = "rejected_by_clickhouse"
)

type metrics struct {
	rowsInserted      prometheus.Counter
	batchRows         prometheus.Histogram
	batchBytes        prometheus.Histogram
	insertDuration    prometheus.Histogram
	insertErrors      *prometheus.CounterVec
	flushes           *prometheus.CounterVec
	deadLettered      *prometheus.CounterVec
	partitionsDropped prometheus.Counter
	heldRecords       prometheus.Gauge
	serverInfo        *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		rowsInserted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sink_rows_inserted_total",
			Help: "Rows inserted into ClickHouse.",
		}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sink_batch_rows",
			Help:    "Rows per insert.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		batchBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sink_batch_bytes",
			Help:    "Bytes of record values per flushed batch (what batch.max_bytes bounds).",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 12),
		}),
		insertDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sink_insert_duration_seconds",
			Help:    "Time of one successful batch insert.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		insertErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sink_insert_errors_total",
			Help: "Failed insert attempts, by kind: connection (unreachable, timed out, connection lost) and server (ClickHouse refused for a reason other than the rows) are retried with backoff; rejected (ClickHouse refused the rows themselves) splits the batch to isolate the rows, which go to the DLQ.",
		}, []string{"kind"}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sink_flushes_total",
			Help: "Batches flushed, by reason: rows (batch.max_rows reached), bytes (batch.max_bytes reached) or time (batch.max_wait passed).",
		}, []string{"reason"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sink_dead_lettered_total",
			Help: "Clean records sent to the DLQ, by reason: invalid_clean_event (does not decode) or rejected_by_clickhouse (ClickHouse refused the row for its content).",
		}, []string{"reason"}),
		heldRecords: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sink_held_records",
			Help: "Records polled from Kafka and not yet committed: the batch being collected or loaded, at most batch.max_rows. While ClickHouse is down it stays at one batch; the backlog waits in Kafka.",
		}),
		serverInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sink_clickhouse_server_info",
			Help: "Always 1, labelled with the ClickHouse server version found at start (SELECT version()); newer server features are used according to it.",
		}, []string{"version"}),
	}
	m.partitionsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sink_partitions_dropped_total",
		Help: "Months of events dropped by retention (retention.months).",
	})
	reg.MustRegister(m.rowsInserted, m.batchRows, m.batchBytes, m.insertDuration, m.insertErrors, m.flushes, m.deadLettered,
		m.partitionsDropped, m.heldRecords, m.serverInfo)
	for _, kind := range []string{kindServer, kindConnection, kindRejected} {
		m.insertErrors.WithLabelValues(kind)
	}
	for _, reason := range []string{"rows", "bytes", "time"} {
		m.flushes.WithLabelValues(reason)
	}
	for _, reason := range []string{reasonInvalid, reasonRejected} {
		m.deadLettered.WithLabelValues(reason)
	}
	return m
}

// setServer labels sink_clickhouse_server_info with v, keeping one series.
func (m *metrics) setServer(v serverVersion) {
	m.serverInfo.Reset()
	m.serverInfo.WithLabelValues(v.String()).Set(1)
}

// erasureMetrics are the erasure worker's and the loader's privacy metrics,
// labelled with the sink's destination so that several sinks aggregate.
type erasureMetrics struct {
	latency      prometheus.Observer
	pending      prometheus.Gauge
	rowsDeleted  prometheus.Counter
	mutations    prometheus.Counter
	failures     prometheus.Counter
	deadLettered prometheus.Counter
	suppressed   prometheus.Counter
	auditRows    prometheus.Counter
}

func newErasureMetrics(reg prometheus.Registerer, destination string) *erasureMetrics {
	labels := prometheus.Labels{"destination": destination}
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "privacy_erasure_duration_seconds", ConstLabels: labels,
		Help:    "Time from an erasure request (requestedAt) to the verified deletion of its rows in this destination. SLO: p99 under 60 s.",
		Buckets: []float64{0.5, 1, 2, 3, 5, 10, 20, 30, 45, 60, 120, 300, 900},
	})
	m := &erasureMetrics{
		latency: latency,
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "privacy_erasures_pending", ConstLabels: labels,
			Help: "Erasure notices received by this sink and not yet verified deleted.",
		}),
		rowsDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privacy_erasure_rows_deleted_total", ConstLabels: labels,
			Help: "Rows of erased subjects deleted from ClickHouse.",
		}),
		mutations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privacy_erasure_mutations_total", ConstLabels: labels,
			Help: "ALTER TABLE ... DELETE mutations issued; one serves every erasure of its window (erasure.window).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privacy_erasure_failures_total", ConstLabels: labels,
			Help: "Deletion attempts that failed or left rows behind; each is retried with backoff.",
		}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privacy_erasure_notices_dead_lettered_total", ConstLabels: labels,
			Help: "Erasure notices that did not decode, sent to the DLQ with reason invalid_erasure_notice.",
		}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sink_rows_suppressed_total",
			Help: "Clean records of erased subjects the loader did not insert (a replay, or rows in flight when the erasure came).",
		}),
		auditRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sink_audit_rows_inserted_total",
			Help: "Receipts loaded into the privacy_audit table.",
		}),
	}
	reg.MustRegister(latency, m.pending, m.rowsDeleted, m.mutations, m.failures, m.deadLettered, m.suppressed, m.auditRows)
	return m
}
