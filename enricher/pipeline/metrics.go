package pipeline

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	records             *prometheus.CounterVec
	dedupEntries        prometheus.Gauge
	transactions        *prometheus.CounterVec
	transactionDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_records_total",
			Help: "Raw records processed in committed transactions, by outcome: clean (de-identified and produced), dead_lettered (sent to the DLQ) or duplicate (a retry of an event already stored, dropped).",
		}, []string{"outcome"}),
		dedupEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "enricher_dedup_entries",
			Help: "Events remembered for de-duplication (dedup_window, dedup_max_entries).",
		}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_transactions_total",
			Help: "Transactions by outcome: committed, aborted (the batch is consumed again) or failed (the enricher stops).",
		}, []string{"outcome"}),
		transactionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "enricher_transaction_duration_seconds",
			Help:    "Time from beginning a batch's transaction to its end, commit or abort.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
	}
	reg.MustRegister(m.records, m.dedupEntries, m.transactions, m.transactionDuration)
	for _, o := range []string{"clean", "dead_lettered", "duplicate"} {
		m.records.WithLabelValues(o)
	}
	for _, o := range []string{"committed", "aborted", "failed"} {
		m.transactions.WithLabelValues(o)
	}
	return m
}
