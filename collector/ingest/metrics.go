package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests        *prometheus.CounterVec
	events          *prometheus.CounterVec
	produceDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collector_http_requests_total",
			Help: "Ingest HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collector_events_total",
			Help: "Events received, by outcome: accepted (acknowledged by Kafka), rejected (invalid, named in the response), failed (Kafka did not acknowledge; the client was told to retry).",
		}, []string{"outcome"}),
		produceDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "collector_produce_duration_seconds",
			Help:    "Time from handing a request's events to the producer until Kafka acknowledged all of them.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	reg.MustRegister(m.requests, m.events, m.produceDuration)
	for _, o := range []string{"accepted", "rejected", "failed"} {
		m.events.WithLabelValues(o)
	}
	return m
}
