package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// namedKeys are the dedup keys of "source/messageId" names.
func namedKeys(names ...string) []dedupKey {
	var ks []dedupKey
	for _, n := range names {
		source, id, _ := strings.Cut(n, "/")
		ks = append(ks, dedupKeyOf(source, id))
	}
	return ks
}

func namedKey(name string) dedupKey { return namedKeys(name)[0] }

func TestDedupWindowAndBound(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	d := newDedup(time.Minute, 3)
	d.add(namedKeys("web/a", "web/b"), t0)
	switch {
	case !d.contains(namedKey("web/a"), t0.Add(30*time.Second)):
		t.Error("forgot a key inside the window")
	case d.contains(namedKey("app/a"), t0):
		t.Error("a key from another source matched")
	case d.contains(namedKey("web/a"), t0.Add(time.Minute)):
		t.Error("remembered a key past the window")
	}
	d.add(namedKeys("web/c", "web/d"), t0.Add(10*time.Second)) // 4 keys > max 3: the oldest goes
	if d.contains(namedKey("web/a"), t0.Add(11*time.Second)) || !d.contains(namedKey("web/b"), t0.Add(11*time.Second)) || d.size() != 3 {
		t.Errorf("bound: a remembered %v, b forgotten %v, size %d", d.contains(namedKey("web/a"), t0), !d.contains(namedKey("web/b"), t0), d.size())
	}
	d.add(namedKeys("web/b"), t0.Add(50*time.Second)) // seen again: its window restarts
	d.add(nil, t0.Add(70*time.Second))
	if !d.contains(namedKey("web/b"), t0.Add(70*time.Second)) || d.contains(namedKey("web/c"), t0.Add(70*time.Second)) {
		t.Error("a key re-added later must outlive its first entry; an expired one must go")
	}
	for i := range 1000 { // the backing slice does not grow without bound
		d.add(namedKeys("web/"+fmt.Sprint(i)), t0.Add(2*time.Minute))
	}
	if d.size() != 3 || len(d.order)-d.head != 3 || cap(d.order) > 64 {
		t.Errorf("size %d, live entries %d, capacity %d", d.size(), len(d.order)-d.head, cap(d.order))
	}
	var off *dedup = newDedup(0, 10)
	off.add(namedKeys("x"), t0)
	if off.contains(namedKey("x"), t0) {
		t.Error("a zero window remembers nothing")
	}
}
