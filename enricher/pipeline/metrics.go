package pipeline

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	records        *prometheus.CounterVec
	produceRetries prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_records_total",
			Help: "Raw records processed, by outcome: clean (de-identified and produced) or dead_lettered (sent to the DLQ).",
		}, []string{"outcome"}),
		produceRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "enricher_produce_retries_total",
			Help: "Batches whose produce failed and was retried.",
		}),
	}
	reg.MustRegister(m.records, m.produceRetries)
	m.records.WithLabelValues("clean")
	m.records.WithLabelValues("dead_lettered")
	return m
}
