package consentstore

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	records                                *prometheus.CounterVec
	consent, tombstones, erasures, invalid prometheus.Counter
	unknownKey                             prometheus.Counter
	subjects                               prometheus.Gauge
	suppressed                             prometheus.Gauge
	rebuild                                prometheus.Gauge
	store                                  *Store
}

func newMetrics(reg prometheus.Registerer, service string, store *Store) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: service + "_consent_records_total",
			Help: "privacy.consent and privacy.erasures records applied to the consent store, by kind: consent, tombstone, erasure, invalid (the subject's consent becomes known to grant nothing, and a minor's), or erasure_unknown_key (an erasure keyed under a pseudonym key this service does not hold, which suppresses nothing here: add the key as retired).",
		}, []string{"kind"}),
		subjects: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: service + "_consent_store_subjects",
			Help: "Subjects whose consent the store holds.",
		}),
		suppressed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: service + "_consent_store_suppressed_subjects",
			Help: "Erased subjects the store suppresses.",
		}),
		rebuild: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: service + "_consent_store_rebuild_seconds",
			Help: "How long reading the consent and erasure topics at start-up took.",
		}),
		store: store,
	}
	reg.MustRegister(m.records, m.subjects, m.suppressed, m.rebuild)
	m.consent, m.tombstones = m.records.WithLabelValues("consent"), m.records.WithLabelValues("tombstone")
	m.erasures, m.invalid = m.records.WithLabelValues("erasure"), m.records.WithLabelValues("invalid")
	m.unknownKey = m.records.WithLabelValues("erasure_unknown_key")
	return m
}

func (m *metrics) observeSize() {
	subjects, suppressed := m.store.Size()
	m.subjects.Set(float64(subjects))
	m.suppressed.Set(float64(suppressed))
}
