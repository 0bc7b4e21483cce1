package pipeline

import (
	"fmt"
	"testing"
	"time"
)

func TestDedupWindowAndBound(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	d := newDedup(time.Minute, 3)
	d.add([]string{"web/a", "web/b"}, t0)
	switch {
	case !d.contains("web/a", t0.Add(30*time.Second)):
		t.Error("forgot a key inside the window")
	case d.contains("app/a", t0):
		t.Error("a key from another source matched")
	case d.contains("web/a", t0.Add(time.Minute)):
		t.Error("remembered a key past the window")
	}
	d.add([]string{"web/c", "web/d"}, t0.Add(10*time.Second)) // 4 keys > max 3: the oldest goes
	if d.contains("web/a", t0.Add(11*time.Second)) || !d.contains("web/b", t0.Add(11*time.Second)) || d.size() != 3 {
		t.Errorf("bound: a remembered %v, b forgotten %v, size %d", d.contains("web/a", t0), !d.contains("web/b", t0), d.size())
	}
	d.add([]string{"web/b"}, t0.Add(50*time.Second)) // seen again: its window restarts
	d.add(nil, t0.Add(70*time.Second))
	if !d.contains("web/b", t0.Add(70*time.Second)) || d.contains("web/c", t0.Add(70*time.Second)) {
		t.Error("a key re-added later must outlive its first entry; an expired one must go")
	}
	for i := range 1000 { // the backing slice does not grow without bound
		d.add([]string{fmt.Sprint(i)}, t0.Add(2*time.Minute))
	}
	if d.size() != 3 || len(d.order)-d.head != 3 || cap(d.order) > 64 {
		t.Errorf("size %d, live entries %d, capacity %d", d.size(), len(d.order)-d.head, cap(d.order))
	}
	var off *dedup = newDedup(0, 10)
	off.add([]string{"x"}, t0)
	if off.contains("x", t0) {
		t.Error("a zero window remembers nothing")
	}
}
