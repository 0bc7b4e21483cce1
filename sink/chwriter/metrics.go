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
