package benchkit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is one scrape of a service's /metrics: the sample lines by
// metric name. The benchmarks read the services' own counters (rows
// inserted, events in and out, flushes by reason) to say where the time
// went and to know when the pipeline has caught up.
type Metrics map[string][]Sample

// Sample is one sample line: its labels as written ({a="b",c="d"}, empty
// when it has none) and its value.
type Sample struct {
	Labels string
	Value  float64
}

// Metrics scrapes the service's admin port's /metrics.
func (s *Service) Metrics() (Metrics, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + s.AdminAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %s", s.Name, resp.Status)
	}
	return ParseMetrics(b), nil
}

// ParseMetrics reads the Prometheus text exposition format, enough for
// counters, gauges and histogram _sum/_count. Comments, blank lines and
// lines without a number at the end are skipped.
func ParseMetrics(b []byte) Metrics {
	out := Metrics{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name, labels := line[:i], ""
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name, labels = name[:j], name[j:]
		}
		out[name] = append(out[name], Sample{labels, v})
	}
	return out
}

// Sum adds the samples of name whose labels contain every one of match
// (such as `route="clean"`); 0 when there are none.
func (m Metrics) Sum(name string, match ...string) float64 {
	var t float64
	for _, s := range m[name] {
		ok := true
		for _, want := range match {
			ok = ok && strings.Contains(s.Labels, want)
		}
		if ok {
			t += s.Value
		}
	}
	return t
}
