package event

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// FuzzAppendJSON checks AppendJSON against json.Marshal: both must decode to
// the same envelope, whatever the strings hold.
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
		want, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		got := env.AppendJSON(nil)
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("AppendJSON wrote invalid JSON %q: %v", got, err)
		}
		_ = json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("AppendJSON:\n%s\njson.Marshal:\n%s", got, want)
		}
	})
}
