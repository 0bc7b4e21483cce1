package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// binaries are the three commands, built once per run.
type binaries struct{ collector, enricher, sink string }

// metrics scrapes the admin port's /metrics of s.
func metrics(s *benchkit.Service) (promText, error) {
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
	return parseProm(b), nil
}

// promText is a scrape: sample lines by metric name.
type promText map[string][]promSample

type promSample struct {
	labels string
	value  float64
}

// parseProm reads the text exposition format, enough for counters, gauges
// and histogram _sum/_count.
func parseProm(b []byte) promText {
	out := promText{}
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
		out[name] = append(out[name], promSample{labels, v})
	}
	return out
}

// sum adds the samples of name whose labels contain every one of match
// (such as `reason="time"`).
func (p promText) sum(name string, match ...string) float64 {
	var t float64
	for _, s := range p[name] {
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(s.labels, m)
		}
		if ok {
			t += s.value
		}
	}
	return t
}
