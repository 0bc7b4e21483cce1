package pipeline

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentflow/consentflow/internal/policy"
)

// violation is one departure from the catalogue of an event of source,
// counted under event (policy.EventLabel).
type violation struct {
	source, event string
	policy.Violation
}

// Bounds of what the violation log keeps: its entries are paths clients
// chose, so their number is capped, per source, event and reason too (a
// flood of junk paths in one event blinds the others to nothing), and so
// are the sources counted by name (the envelope's sourceId is the
// collector's, but the raw topic takes what anyone with access writes).
const (
	maxViolationEntries = 1000
	maxGroupEntries     = 50
	maxViolationSources = 64
	otherSource         = "(other)"
)

// violationLog counts departures from the catalogue by source, event,
// path and reason, for the privacy office to see what was removed where
// (never a value): GET /catalogue/violations on the admin port.
type violationLog struct {
	mu sync.Mutex
	// groups holds the entries by source, event and reason, then path.
	groups  map[violationGroup]map[string]*violationEntry
	entries int
	sources map[string]bool
	omitted int // departures of paths past maxViolationEntries
	metric  *prometheus.CounterVec
}

// violationGroup is a source, an event and a reason.
type violationGroup struct {
	source, event string
	reason        policy.Reason
}

type violationEntry struct {
	count    int
	lastSeen time.Time
}

func newViolationLog(reg prometheus.Registerer) *violationLog {
	l := &violationLog{groups: map[violationGroup]map[string]*violationEntry{}, sources: map[string]bool{},
		metric: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_catalogue_violations_total",
			Help: "Departures from the event catalogue among kept events, by source, event (its declared name, its type, or (undeclared)) and reason: undeclared_event, source_not_allowed, undeclared_field, wrong_type, invalid_value, personal_key, personal_value. The paths are at GET /catalogue/violations on the admin port.",
		}, []string{"source", "event", "reason"})}
	reg.MustRegister(l.metric)
	return l
}

// add counts the departures of a committed batch.
func (l *violationLog) add(vs []violation, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range vs {
		// Cloned: kept for good, and they share the memory of the fetch
		// they came in.
		v.source = l.sourceLabel(v.source)
		v.event, v.Path = strings.Clone(v.event), strings.Clone(v.Path)
		l.metric.WithLabelValues(v.source, v.event, string(v.Reason)).Inc()
		if e := l.entry(violationGroup{v.source, v.event, v.Reason}, v.Path); e != nil {
			e.count++
			e.lastSeen = now
		} else {
			l.omitted++
		}
	}
}

// entry is the entry of path in group g, new if need be: when g is full,
// it takes the place of g's least seen path (paths seen once, as junk is,
// give way to one another; recurring ones stay); nil when the log is full.
func (l *violationLog) entry(g violationGroup, path string) *violationEntry {
	paths := l.groups[g]
	if e := paths[path]; e != nil {
		return e
	}
	if len(paths) >= maxGroupEntries {
		var least string
		for p, e := range paths {
			if least == "" || e.count < paths[least].count {
				least = p
			}
		}
		l.omitted += paths[least].count
		delete(paths, least)
		l.entries--
	}
	if l.entries >= maxViolationEntries {
		return nil
	}
	if paths == nil {
		paths = map[string]*violationEntry{}
		l.groups[g] = paths
	}
	e := &violationEntry{}
	paths[path] = e
	l.entries++
	return e
}

func (l *violationLog) sourceLabel(source string) string {
	source = strings.ToLower(source)
	if !l.sources[source] {
		if len(l.sources) >= maxViolationSources {
			return otherSource
		}
		source = strings.Clone(source)
		l.sources[source] = true
	}
	return source
}

// ViolationReport is the body of GET /catalogue/violations.
type ViolationReport struct {
	// Violations since the enricher started, most frequent first.
	Violations []ViolationCount `json:"violations"`
	// Omitted counts departures at paths not listed: the list was full, or
	// their path gave way to one seen more often.
	Omitted int `json:"omitted"`
}

// ViolationCount is how often one departure was seen.
type ViolationCount struct {
	Source   string    `json:"source"`
	Event    string    `json:"event"`
	Path     string    `json:"path"`
	Reason   string    `json:"reason"`
	Count    int       `json:"count"`
	LastSeen time.Time `json:"lastSeen"`
}

func (l *violationLog) report() ViolationReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := ViolationReport{Violations: make([]ViolationCount, 0, l.entries), Omitted: l.omitted}
	for g, paths := range l.groups {
		for path, e := range paths {
			r.Violations = append(r.Violations, ViolationCount{Source: g.source, Event: g.event, Path: path,
				Reason: string(g.reason), Count: e.count, LastSeen: e.lastSeen.UTC()})
		}
	}
	slices.SortFunc(r.Violations, func(a, b ViolationCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Source+a.Event+a.Path, b.Source+b.Event+b.Path)
	})
	return r
}

// ServeHTTP writes the report as JSON.
func (l *violationLog) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(l.report()) // a failed write is the client's to see
}
