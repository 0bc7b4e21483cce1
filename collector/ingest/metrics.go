package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	inFlight        prometheus.Gauge
	bodyBytes       *prometheus.HistogramVec
	bodyMemory      prometheus.Gauge
	bodiesCut       *prometheus.CounterVec
	accepted        prometheus.Counter
	rejected        *prometheus.CounterVec
	produceDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collector_http_requests_total",
			Help: "Ingest HTTP requests by route (batch, track, ..., consent, pixel, redirect, other) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "collector_http_request_duration_seconds",
			Help:    "Time from request to response, by route; includes waiting for Kafka's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "collector_http_requests_in_flight",
			Help: "Ingest requests being served.",
		}),
		bodyBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "collector_http_request_body_bytes",
			Help:    "Request body size after gzip decoding, by route.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 8),
		}, []string{"route"}),
		bodyMemory: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "collector_http_body_memory_bytes",
			Help: "Bytes of request bodies held: arriving, being decoded or being served (http.max_body_memory_bytes bounds it).",
		}),
		bodiesCut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collector_http_bodies_cut_total",
			Help: "Requests whose body was cut off and connection closed, by reason: body_timeout (not received within http.body_timeout, 408), body_memory (http.max_body_memory_bytes reached, 503).",
		}, []string{"reason"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collector_events_accepted_total",
			Help: "Events acknowledged by Kafka and answered 200.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collector_events_rejected_total",
			Help: "Events not stored, by reason: invalid and too_large (named in the response), rate_limited (429), overloaded and produce_failed (503, the client retries).",
		}, []string{"reason"}),
		produceDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "collector_produce_duration_seconds",
			Help:    "Time from handing a request's events to the producer until Kafka acknowledged all of them.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight, m.bodyBytes, m.bodyMemory, m.bodiesCut, m.accepted, m.rejected, m.produceDuration)
	for _, r := range []string{cutBodyTimeout, cutBodyMemory} {
		m.bodiesCut.WithLabelValues(r)
	}
	for _, r := range []string{reasonInvalid, reasonTooLarge, reasonRateLimited, reasonOverloaded, reasonProduceFailed} {
		m.rejected.WithLabelValues(r)
	}
	return m
}
