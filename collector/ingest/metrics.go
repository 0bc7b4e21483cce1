package ingest

import (
	"strconv"

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
	// erasures counts accepted erasure requests by reason, erasureRefusals
	// refused ones by status code (privacy.go).
	erasures        *prometheus.CounterVec
	erasureRefusals *prometheus.CounterVec
	// exports counts export requests by result.
	exports *prometheus.CounterVec
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
		erasures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privacy_erasure_requests_total",
			Help: "Erasure requests recorded in the erasure log (answered 202), by reason: account_cancelled, consent_withdrawn, user_request.",
		}, []string{"reason"}),
		erasureRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privacy_erasure_requests_refused_total",
			Help: "Erasure requests not recorded, by status code: 400 (invalid), 401 (no or unknown operator token), 413 (body too large), 503 (Kafka did not acknowledge; the operator retries).",
		}, []string{"code"}),
		exports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privacy_exports_total",
			Help: "Export requests (POST /v1/privacy/exports) by result: served (answered 200 and audited), refused (400, 401, 413) or failed (503: ClickHouse or Kafka did not answer).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight, m.bodyBytes, m.bodyMemory, m.bodiesCut, m.accepted, m.rejected, m.produceDuration, m.erasures, m.erasureRefusals, m.exports)
	for _, r := range []string{"served", "refused", "failed"} {
		m.exports.WithLabelValues(r)
	}
	for _, r := range []string{cutBodyTimeout, cutBodyMemory} {
		m.bodiesCut.WithLabelValues(r)
	}
	for _, r := range erasureReasons {
		m.erasures.WithLabelValues(r)
	}
	for _, code := range erasureRefusalCodes {
		m.erasureRefusals.WithLabelValues(strconv.Itoa(code))
	}
	for _, r := range []string{reasonInvalid, reasonTooLarge, reasonRateLimited, reasonOverloaded, reasonProduceFailed} {
		m.rejected.WithLabelValues(r)
	}
	return m
}
