package chwriter

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	rowsInserted      prometheus.Counter
	batchRows         prometheus.Histogram
	insertDuration    prometheus.Histogram
	insertErrors      *prometheus.CounterVec
	flushes           *prometheus.CounterVec
	deadLettered      prometheus.Counter
	partitionsDropped prometheus.Counter
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
		insertDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sink_insert_duration_seconds",
			Help:    "Time of one successful batch insert.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		insertErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sink_insert_errors_total",
			Help: "Failed insert attempts (each is retried), by kind: server (ClickHouse refused: an exception with a code) or connection (unreachable, timed out, connection lost).",
		}, []string{"kind"}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sink_flushes_total",
			Help: "Batches flushed, by reason: rows (batch.max_rows reached), bytes (batch.max_bytes reached) or time (batch.max_wait passed).",
		}, []string{"reason"}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sink_dead_lettered_total",
			Help: "Clean records that could not be decoded and went to the DLQ.",
		}),
	}
	m.partitionsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sink_partitions_dropped_total",
		Help: "Months of events dropped by retention (retention.months).",
	})
	reg.MustRegister(m.rowsInserted, m.batchRows, m.insertDuration, m.insertErrors, m.flushes, m.deadLettered, m.partitionsDropped)
	for _, kind := range []string{"server", "connection"} {
		m.insertErrors.WithLabelValues(kind)
	}
	for _, reason := range []string{"rows", "bytes", "time"} {
		m.flushes.WithLabelValues(reason)
	}
	return m
}
