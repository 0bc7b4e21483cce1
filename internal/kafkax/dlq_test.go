package kafkax

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// quotingError is an error that quotes its input, as decoders' errors do,
// and can say the same without it.
type quotingError struct{ field, value string }

func (e *quotingError) Error() string { return fmt.Sprintf("%s: unknown type %q", e.field, e.value) }
func (e *quotingError) RedactedError() string {
	return e.field + ": unknown type"
}

// TestDeadLetterPointsAndCopiesNothing: a dead letter locates its record
// and says why, and holds nothing of it: no key, no value, no header, and
// no input value in the error, whether the error can redact itself or
// quotes the input anyway.
func TestDeadLetterPointsAndCopiesNothing(t *testing.T) {
	const device = "490154203237518"
	value := `{"messageId":"m-4711-secret","event":{"type":"imei-` + device + `","anonymousId":"` + device + `","properties":{"phone":13800138000}}}`
	inputs := []string{device, "imei-" + device, "m-4711-secret", "13800138000"}
	src := &kgo.Record{Topic: "events.raw.cn", Partition: 2, Offset: 41, Key: []byte(device), Value: []byte(value),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}}}
	sum := sha256.Sum256(src.Value)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"redacter, wrapped", fmt.Errorf("decode envelope: %w", &quotingError{"event.type", "imei-" + device}), "decode envelope: event.type: unknown type"},
		{"redacter in a join", errors.Join(errors.New("first"), &quotingError{"event.type", device}), "first\nevent.type: unknown type"},
		{"quotes the input", fmt.Errorf("decode: got %q after %s and phone 13800138000", "imei-"+device, "m-4711-secret"), `decode: got "…" after … and phone …`},
		{"quotes the key", fmt.Errorf("subject %s refused", device), "subject … refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dl := DeadLetter(src, "events.dlq.raw.cn", "enricher", "invalid_envelope", tc.err)
			if dl.Topic != "events.dlq.raw.cn" || dl.Key != nil {
				t.Errorf("dead letter topic %q key %q, want events.dlq.raw.cn and no key", dl.Topic, dl.Key)
			}
			want := map[string]string{
				HeaderReason: "invalid_envelope", HeaderStage: "enricher", HeaderError: tc.want,
				HeaderTopic: "events.raw.cn", HeaderPartition: "2", HeaderOffset: "41",
				HeaderValueSHA256: hex.EncodeToString(sum[:]), HeaderValueBytes: fmt.Sprint(len(value)),
			}
			if len(dl.Headers) != len(want) {
				t.Errorf("headers %+v, want only %v", dl.Headers, want)
			}
			for key, w := range want {
				if got := Header(dl, key); got != w {
					t.Errorf("header %s = %q, want %q", key, got, w)
				}
			}
			var p DeadLetterPointer
			if err := json.Unmarshal(dl.Value, &p); err != nil {
				t.Fatalf("value %s: %v", dl.Value, err)
			}
			if p != (DeadLetterPointer{Reason: "invalid_envelope", Stage: "enricher", Error: tc.want, Topic: "events.raw.cn", Partition: 2, Offset: 41,
				ValueSHA256: hex.EncodeToString(sum[:]), ValueBytes: len(value)}) {
				t.Errorf("value %+v", p)
			}
			all := string(dl.Key) + string(dl.Value)
			for _, h := range dl.Headers {
				all += h.Key + string(h.Value)
			}
			for _, in := range inputs {
				if strings.Contains(all, in) {
					t.Errorf("dead letter holds the input %q", in)
				}
			}
		})
	}
	if len(src.Headers) != 1 || string(src.Key) != device {
		t.Error("DeadLetter changed the source record")
	}
}
