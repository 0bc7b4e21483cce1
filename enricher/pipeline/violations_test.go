package pipeline

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/consentflow/consentflow/internal/policy"
)

// TestViolationLogBounded: a flood of junk paths in one event neither
// grows the log past its bounds nor hides what recurs, there or in other
// events.
func TestViolationLogBounded(t *testing.T) {
	l := newViolationLog(prometheus.NewRegistry())
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	real := violation{source: "demo", event: "Order Completed", Violation: policy.Violation{Path: "properties.client_ip", Reason: policy.ReasonPersonalKey}}
	other := violation{source: "demo", event: "Signed Up", Violation: policy.Violation{Path: "properties.plan", Reason: policy.ReasonUndeclaredField}}
	for range 5 {
		l.add([]violation{real}, at)
	}
	l.add([]violation{other}, at)
	var junk []violation
	for i := range 5000 {
		junk = append(junk, violation{source: "demo", event: "Order Completed",
			Violation: policy.Violation{Path: fmt.Sprintf("properties.junk%d", i), Reason: policy.ReasonPersonalKey}})
	}
	l.add(junk, at)

	r := l.report()
	if len(r.Violations) != maxGroupEntries+1 {
		t.Errorf("%d paths listed, want %d (one group full, one path of another)", len(r.Violations), maxGroupEntries+1)
	}
	counts := map[string]int{}
	for _, v := range r.Violations {
		counts[v.Event+" "+v.Path] = v.Count
	}
	if counts["Order Completed properties.client_ip"] != 5 || counts["Signed Up properties.plan"] != 1 {
		t.Errorf("recurring paths lost among the junk: %v", counts)
	}
	if want := 5000 - (maxGroupEntries - 1); r.Omitted != want {
		t.Errorf("omitted %d, want %d", r.Omitted, want)
	}
	if got := testutil.ToFloat64(l.metric.WithLabelValues("demo", "Order Completed", "personal_key")); got != 5005 {
		t.Errorf("metric %v, want every departure counted (5005)", got)
	}
}
