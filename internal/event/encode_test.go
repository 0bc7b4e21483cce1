package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzAppendJSON checks AppendJSON against json.Marshal: both must decode to
// the same envelope, whatever the strings hold; and EnvelopeEncoder must
// write AppendJSON's bytes.
func FuzzAppendJSON(f *testing.F) {
	f.Add("m-1", "u-1", "<script>&\"quoted\"\\\n\t\x01", "203.0.113.9", `{"locale":"zh-CN"}`, true)
	f.Add("", "\u2028\u2029\xff\xfe", "名字", "", ``, false)
	f.Fuzz(func(t *testing.T, messageID, userID, name, ip, context string, dnt bool) {
		env := Envelope{
			SchemaVersion: SchemaVersion, MessageID: messageID, SourceID: "web", Region: "cn",
			ReceivedAt: time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC),
			Signals:    Signals{DNT: dnt, IP: ip, UserAgent: name, TrustContextIP: dnt},
			Event:      Event{Type: "track", UserID: userID, Event: name, Name: name, Timestamp: "2026-11-28T10:00:00Z"},
		}
		if json.Valid([]byte(context)) {
			env.Event.Context = json.RawMessage(context)
			env.Event.Properties = json.RawMessage(context)
		}
		got := env.AppendJSON(nil)
		sameAsMarshal(t, got, env)
		enc := NewEnvelopeEncoder(&Envelope{SchemaVersion: env.SchemaVersion, SourceID: env.SourceID, Region: env.Region, ReceivedAt: env.ReceivedAt, Signals: env.Signals})
		if again := enc.Append([]byte("x"), env.MessageID, &env.Event); string(again) != "x"+string(got) {
			t.Fatalf("EnvelopeEncoder.Append:\n%s\nAppendJSON:\n%s", again[1:], got)
		}
	})
}

// sameAsMarshal fails unless got decodes to what json.Marshal(v) does.
func sameAsMarshal(t *testing.T, got []byte, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("AppendJSON wrote invalid JSON %q: %v", got, err)
	}
	_ = json.Unmarshal(want, &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("AppendJSON:\n%s\njson.Marshal:\n%s", got, want)
	}
}

// FuzzCleanAppendJSON checks Clean.AppendJSON against json.Marshal.
func FuzzCleanAppendJSON(f *testing.F) {
	f.Add("m-1", "k1.abc", "<b>&\"q\"\\\n\x01", "CN", `{"locale":"zh-CN"}`, true, 2)
	f.Add("", "", "\u2028\xff", "", ``, false, 0)
	f.Fuzz(func(t *testing.T, messageID, subject, name, country, raw string, dnt bool, purposes int) {
		c := Clean{SchemaVersion: SchemaVersion, MessageID: messageID, Type: "track", Event: name,
			Timestamp: time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC), ReceivedAt: time.Date(2026, 11, 28, 10, 0, 1, 0, time.UTC),
			SourceID: "web", Region: "cn", Subject: subject, UserID: subject, DeviceID: name, Country: country, Browser: name, DNT: dnt, GPC: !dnt}
		if purposes > 0 {
			c.Purposes = Purposes[:min(purposes, len(Purposes))]
		}
		if json.Valid([]byte(raw)) {
			c.Context, c.Properties = json.RawMessage(raw), json.RawMessage(raw)
		}
		sameAsMarshal(t, c.AppendJSON(nil), c)
	})
}

// FuzzAppendValue checks AppendValue against json.Marshal on whatever
// encoding/json decodes with UseNumber: the bytes must be equal.
func FuzzAppendValue(f *testing.F) {
	f.Add([]byte(`{"b":[1,"x",null,true,{"z":1.50,"a":"<&>"}],"a":"\u2028\ud800"}`))
	f.Add([]byte(`"plain"`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Skip()
		}
		got, err := AppendValue(nil, v)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("AppendValue = %s (%v)\njson.Marshal = %s", got, err, want)
		}
	})
}

// TestPlainPrefixFindsTheFirstSpecialByte: eight bytes at a time or one,
// plainPrefix stops at the first byte that is not plain, wherever it is
// and whatever plain or special bytes follow it.
func TestPlainPrefixFindsTheFirstSpecialByte(t *testing.T) {
	naive := func(s string) int {
		i := 0
		for i < len(s) && plain[s[i]] {
			i++
		}
		return i
	}
	for c := range 256 {
		for n := range 20 {
			for pos := range n {
				for _, after := range []byte{'a', 0, 0x1f, 0x80, '"', 0xff} {
					b := bytes.Repeat([]byte{'x'}, n)
					b[pos] = byte(c)
					for j := pos + 1; j < n; j++ {
						b[j] = after
					}
					if got, want := plainPrefix(string(b)), naive(string(b)); got != want {
						t.Fatalf("plainPrefix(%q) = %d, want %d", b, got, want)
					}
				}
			}
		}
	}
}

// TestTimeBounds: an event time further from its receipt than the bounds
// allow is refused, naming the field and the setting, and matches
// ErrOutOfTimeBounds; one within them passes.
func TestTimeBounds(t *testing.T) {
	b := TimeBounds{MaxAge: 7 * 24 * time.Hour, MaxFuture: time.Hour}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		offset time.Duration
		want   string
	}{
		{-7 * 24 * time.Hour, ""}, {time.Hour, ""}, {0, ""},
		{-7*24*time.Hour - time.Second, "max_event_age"}, {time.Hour + time.Second, "max_future_skew"},
	} {
		err := b.Check("timestamp", at.Add(tc.offset), at)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v from receipt: %v, want none", tc.offset, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "timestamp: ") ||
			!errors.Is(err, ErrOutOfTimeBounds) || !errors.Is(err, ErrPermanent)):
			t.Errorf("%v from receipt: %v, want a permanent timestamp error naming %s", tc.offset, err, tc.want)
		}
	}
}
