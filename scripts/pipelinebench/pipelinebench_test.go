package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	good := loadStats{offered: 10000, accepted: 99000, elapsed: 10 * time.Second}
	fresh := freshness{n: 1000, p99: 1500 * time.Millisecond}
	lag := map[string]int64{"enricher": 5000, "sink cn": 20000}
	if v := judge(good, lag, fresh); !v.ok() || v.String() != "sustained" {
		t.Errorf("a step within every bound: %v", v)
	}
	for name, c := range map[string]struct {
		load  loadStats
		lag   map[string]int64
		fresh freshness
		want  string
	}{
		"too few accepted": {loadStats{offered: 10000, accepted: 94000, elapsed: 10 * time.Second}, lag, fresh, "accepted 94%"},
		"a failed request": {loadStats{offered: 10000, accepted: 99000, elapsed: 10 * time.Second, failed: 1, firstErr: errors.New("503")}, lag, fresh, "1 requests failed (503)"},
		"lag past 2 s":     {good, map[string]int64{"sink intl": 20001}, fresh, "sink intl lag 20001 > 20000"},
		"slow p99":         {good, lag, freshness{n: 1000, p99: 2001 * time.Millisecond}, "freshness p99 2.001s > 2s"},
		"nothing followed": {good, lag, freshness{}, "no followed event"},
	} {
		v := judge(c.load, c.lag, c.fresh)
		if v.ok() || !strings.Contains(v.String(), c.want) || !strings.HasPrefix(v.String(), "NOT sustained") {
			t.Errorf("%s: verdict %q; want NOT sustained with %q", name, v, c.want)
		}
	}
}

func TestBestIsTheFastestSustainedStep(t *testing.T) {
	mk := func(n int, accepted int64, v verdict) step {
		return step{n: n, load: loadStats{accepted: accepted, elapsed: time.Second}, verdict: v}
	}
	steps := []step{mk(1, 1000, nil), mk(2, 3000, nil), mk(3, 5000, verdict{"lag"}), mk(4, 2000, nil)}
	if b, ok := best(steps); !ok || b.n != 2 {
		t.Errorf("best = step %d, %v; want step 2, the fastest sustained", b.n, ok)
	}
	if _, ok := best(steps[2:3]); ok {
		t.Error("best of only unsustained steps: found one")
	}
}

func TestSummarizeCountsMissingAtTheirAge(t *testing.T) {
	var ages []time.Duration
	for i := 1; i <= 98; i++ {
		ages = append(ages, time.Duration(i)*10*time.Millisecond)
	}
	// Two events never queryable, counted at their age at the end of the
	// settle: they hold the p99 up as a real delay would.
	ages = append(ages, 8*time.Second, 8*time.Second)
	f := summarize(ages, 2)
	if f.n != 100 || f.missing != 2 || f.p50 != 500*time.Millisecond || f.p99 != 8*time.Second || f.max != 8*time.Second {
		t.Errorf("summarize = %+v; want 100 followed, 2 missing, p50 500ms, p99 and max 8s", f)
	}
	if f := summarize(nil, 0); f != (freshness{}) {
		t.Errorf("summarize of none = %+v; want zero", f)
	}
}

func TestTrackerAges(t *testing.T) {
	tr := newTracker()
	t0 := time.Now()
	for _, id := range []string{"a", "b", "c", "d"} {
		tr.add(id, 1)
	}
	tr.add("other-step", 2)
	tr.ack("a", t0, true)
	tr.ack("b", t0, true)
	tr.ack("c", t0, false) // refused: not followed
	tr.ack("other-step", t0, true)
	tr.sawVisible([]string{"a"}, t0.Add(300*time.Millisecond))
	if got := tr.outstanding(); len(got) != 2 {
		t.Errorf("outstanding = %v; want b and other-step", got)
	}
	ages, missing := tr.ages(1, t0.Add(time.Second))
	if missing != 1 || len(ages) != 2 || ages[0] != 300*time.Millisecond || ages[1] != time.Second {
		t.Errorf("ages = %v, missing %d; want [300ms 1s] with b missing at its age", ages, missing)
	}
}

func TestSVGChart(t *testing.T) {
	out := svgChart("rates & <p99>", []string{"1000", "2000", "4000"}, []panel{
		{title: "events/s", series: []series{{"offered", "#888", []float64{1000, 2000, 4000}}, {"accepted", "#00f", []float64{1000, 2000, 3000}}}},
		{title: "p99", series: []series{{"p99", "#f00", []float64{0.5, 1, 5}}}, limit: 2, limitLabel: "2 s"},
	})
	var doc struct {
		XMLName   xml.Name `xml:"svg"`
		Polylines []struct {
			Points string `xml:"points,attr"`
		} `xml:"polyline"`
		Lines []struct {
			Dash string `xml:"stroke-dasharray,attr"`
		} `xml:"line"`
		Texts []string `xml:"text"`
	}
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("not well-formed SVG: %v\n%s", err, out)
	}
	if len(doc.Polylines) != 3 {
		t.Fatalf("%d polylines; want one per series, 3", len(doc.Polylines))
	}
	// The x axis is shared: the first series' points run left to right,
	// the highest value highest (smallest y), and zero would be at the
	// panel's bottom.
	pts := strings.Fields(doc.Polylines[0].Points)
	if len(pts) != 3 {
		t.Fatalf("points %q; want one per step", doc.Polylines[0].Points)
	}
	var xs, ys [3]float64
	for i, p := range pts {
		if _, err := fmt.Sscanf(p, "%f,%f", &xs[i], &ys[i]); err != nil {
			t.Fatalf("point %q: %v", p, err)
		}
	}
	if !(xs[0] < xs[1] && xs[1] < xs[2]) || !(ys[0] > ys[1] && ys[1] > ys[2]) {
		t.Errorf("offered points %v; want x rising and y rising up the page (falling y)", pts)
	}
	bottom := float64(marginTop + panelHeight)
	if want := bottom - panelHeight*1000/(4000*1.1); abs(ys[0]-want) > 0.1 {
		t.Errorf("y of 1000 = %v; want %v (scale 0 to 1.1 x the highest value)", ys[0], want)
	}
	dashed := 0
	for _, l := range doc.Lines {
		if l.Dash != "" {
			dashed++
		}
	}
	if dashed != 1 {
		t.Errorf("%d dashed lines; want the p99 panel's limit only", dashed)
	}
	if !strings.Contains(string(out), "rates &amp; &lt;p99&gt;") {
		t.Error("title not escaped")
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func TestKneeNamesTheStageThatFellBehind(t *testing.T) {
	ok := step{n: 1, load: loadStats{offered: 1000, accepted: 1000, elapsed: time.Second}}
	lagging := step{n: 2, load: loadStats{offered: 2000, accepted: 2000, elapsed: time.Second},
		lag: map[string]int64{"enricher": 100, "sink cn": 9000, "sink intl": 50}, verdict: verdict{"sink cn lag"}}
	refused := step{n: 2, load: loadStats{offered: 2000, accepted: 1000, elapsed: time.Second},
		lag: map[string]int64{"enricher": 9000}, verdict: verdict{"accepted 50%"}}
	if s, stage, found := knee([]step{ok, lagging, refused}); !found || s.n != 2 || stage != "sink cn" {
		t.Errorf("knee = step %d, %q, %v; want step 2, sink cn (the most lag)", s.n, stage, found)
	}
	// A miss followed by a sustained step is noise: the knee is past it.
	later := lagging
	later.n = 4
	if s, _, found := knee([]step{ok, refused, ok, later}); !found || s.n != 4 {
		t.Errorf("knee after a miss and a recovery = step %d, %v; want step 4", s.n, found)
	}
	if _, stage, _ := knee([]step{ok, refused}); stage != "collector" {
		t.Errorf("knee of a step whose load was refused = %q; want collector", stage)
	}
	if _, _, found := knee([]step{ok}); found {
		t.Error("knee found among sustained steps only")
	}
}

func TestReadEnvFile(t *testing.T) {
	got, err := readEnvFile("../../configs/cluster/kafka.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"COLLECTOR", "ENRICHER", "SINK"} {
		if !slices.Contains(got[prefix], "KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094") ||
			!slices.Contains(got[prefix], "TOPICS_RECEIPTS_REPLICATION_FACTOR=3") {
			t.Errorf("%s: %v, want the cluster's brokers and receipts at replication factor 3", prefix, got[prefix])
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.env")
	if err := os.WriteFile(bad, []byte("# ok\nCOLLECTOR_KAFKA_BROKERS=a:1\nNOPREFIX=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readEnvFile(bad); err == nil || !strings.Contains(err.Error(), "bad.env:3") {
		t.Errorf("a line without PREFIX_: %v, want an error naming line 3", err)
	}
}
