package privacyapi

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	// erasures counts accepted erasure requests by reason, erasureRefusals
	// refused ones by status code (erasure.go).
	erasures        *prometheus.CounterVec
	erasureRefusals *prometheus.CounterVec
	// exports counts export requests by result.
	exports *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
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
	reg.MustRegister(m.erasures, m.erasureRefusals, m.exports)
	for _, r := range []string{"served", "refused", "failed"} {
		m.exports.WithLabelValues(r)
	}
	for _, r := range erasureReasons {
		m.erasures.WithLabelValues(r)
	}
	for _, code := range erasureRefusalCodes {
		m.erasureRefusals.WithLabelValues(strconv.Itoa(code))
	}
	return m
}
