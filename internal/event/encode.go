package event

import (
	"encoding/json"
	"math/bits"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the envelope as json.Marshal would write it, but copies
// the event's raw parts (context, properties, traits, integrations)
// verbatim where json.Marshal would scan and compact each again: on the
// collector's hot path that re-scan costs as much as decoding. The raw parts
// must be valid JSON, as they are when they came from decoding.
func (env *Envelope) AppendJSON(b []byte) []byte {
	b = appendEnvelopeHead(b, env.SchemaVersion)
	b = appendString(b, env.MessageID)
	b = appendEnvelopeMid(b, env)
	return appendEnvelopeEvent(b, &env.Event)
}

// EnvelopeEncoder writes the envelopes of one request, which differ only
// in their messageId and event: the rest is encoded once, in NewEnvelopeEncoder.
type EnvelopeEncoder struct {
	head, mid []byte
}

// NewEnvelopeEncoder prepares to write envelopes like env (its MessageID
// and Event are not used).
func NewEnvelopeEncoder(env *Envelope) EnvelopeEncoder {
	var enc EnvelopeEncoder
	enc.Reset(env)
	return enc
}

// Reset prepares enc to write envelopes like env, reusing its memory.
func (enc *EnvelopeEncoder) Reset(env *Envelope) {
	enc.head = appendEnvelopeHead(enc.head[:0], env.SchemaVersion)
	enc.mid = appendEnvelopeMid(enc.mid[:0], env)
}

// Append appends the envelope with messageID and e, byte for byte what
// Envelope.AppendJSON writes.
func (enc *EnvelopeEncoder) Append(b []byte, messageID string, e *Event) []byte {
	b = append(b, enc.head...)
	b = appendString(b, messageID)
	b = append(b, enc.mid...)
	return appendEnvelopeEvent(b, e)
}

// Overhead is about what Append adds to the bytes of an event as sent, for
// sizing buffers: the envelope, a generated messageId twice, and the
// originalTimestamp the collector adds.
func (enc *EnvelopeEncoder) Overhead() int { return len(enc.head) + len(enc.mid) + 160 }

// appendEnvelopeHead writes an envelope up to its messageId's value.
func appendEnvelopeHead(b []byte, schemaVersion int) []byte {
	b = append(b, `{"schemaVersion":`...)
	b = strconv.AppendInt(b, int64(schemaVersion), 10)
	return append(b, `,"messageId":`...)
}

// appendEnvelopeMid writes an envelope from after its messageId to its
// event's type.
func appendEnvelopeMid(b []byte, env *Envelope) []byte {
	b = append(b, `,"receivedAt":"`...)
	b = env.ReceivedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "sourceId", env.SourceID, false)
	b = appendField(b, "region", env.Region, false)
	s := env.Signals
	b = append(b, `,"signals":{"dnt":`...)
	b = strconv.AppendBool(b, s.DNT)
	b = append(b, `,"gpc":`...)
	b = strconv.AppendBool(b, s.GPC)
	b = appendField(b, "ip", s.IP, true)
	b = appendField(b, "userAgent", s.UserAgent, true)
	if s.TrustContextIP {
		b = append(b, `,"trustContextIp":true`...)
	}
	if s.ServerSource {
		b = append(b, `,"serverSource":true`...)
	}
	return append(b, `},"event":{"type":`...)
}

// appendEnvelopeEvent writes the event from its type's value to the end of
// the envelope.
func appendEnvelopeEvent(b []byte, e *Event) []byte {
	b = appendString(b, e.Type)
	b = appendField(b, "messageId", e.MessageID, true)
	b = appendField(b, "userId", e.UserID, true)
	b = appendField(b, "anonymousId", e.AnonymousID, true)
	b = appendField(b, "event", e.Event, true)
	b = appendField(b, "name", e.Name, true)
	b = appendField(b, "groupId", e.GroupID, true)
	b = appendField(b, "previousId", e.PreviousID, true)
	b = appendField(b, "timestamp", e.Timestamp, true)
	b = appendField(b, "originalTimestamp", e.OriginalTimestamp, true)
	b = appendField(b, "sentAt", e.SentAt, true)
	b = appendRaw(b, "context", e.Context)
	b = appendRaw(b, "properties", e.Properties)
	b = appendRaw(b, "traits", e.Traits)
	b = appendRaw(b, "integrations", e.Integrations)
	return append(b, '}', '}')
}

func appendRaw(b []byte, name string, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return append(b, raw...)
}

func appendField(b []byte, name, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

const hex = "0123456789abcdef"

// plain marks the bytes a JSON string holds as they are: ASCII but control
// characters, quotes, backslashes and the HTML characters <, > and &.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// plainPrefix is how many bytes at the start of s are plain, eight at a
// time, as lanes of a uint64 (internal/jsonscan's lookMask, with the same
// names: ones holds 1 in every lane, highs the top bit of every lane;
// hasZero marks the zero lanes): the lowest byte a mask below marks is not
// plain (a mark above it may be a borrow's).
func plainPrefix(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) &^ v & highs }
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		m := hasZero(w^(ones*'"')) | hasZero(w^(ones*'\\')) | hasZero(w^(ones*'<')) | hasZero(w^(ones*'>')) | hasZero(w^(ones*'&')) |
			(w-ones*0x20)&^w&highs | // control characters
			w&highs // not ASCII
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(s) && plain[s[i]] {
		i++
	}
	return i
}

// AppendString appends s as a JSON string, as json.Marshal writes it.
func AppendString(b []byte, s string) []byte { return appendString(b, s) }

// appendString writes s as a JSON string, escaping as encoding/json does
// (quotes, backslashes, control characters, <, >, & and U+2028/U+2029) and
// replacing invalid UTF-8 with U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	// Most strings need no escaping: find the first byte that may.
	i := plainPrefix(s)
	if i == len(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendJSON appends the clean event as json.Marshal would write it (up to
// HTML escaping inside context and properties, which it copies verbatim):
// encoding each event through reflection was a tenth of the enricher's
// work. Context and Properties must be valid JSON.
func (c *Clean) AppendJSON(b []byte) []byte {
	b = append(b, `{"schemaVersion":`...)
	b = strconv.AppendInt(b, int64(c.SchemaVersion), 10)
	b = appendField(b, "messageId", c.MessageID, false)
	b = appendField(b, "type", c.Type, false)
	b = appendField(b, "event", c.Event, true)
	b = append(b, `,"timestamp":"`...)
	b = c.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","receivedAt":"`...)
	b = c.ReceivedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "sourceId", c.SourceID, false)
	b = appendField(b, "region", c.Region, false)
	if c.Purposes == nil {
		b = append(b, `,"purposes":null`...)
	} else {
		b = append(b, `,"purposes":[`...)
		for i, p := range c.Purposes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, p)
		}
		b = append(b, ']')
	}
	b = appendField(b, "subject", c.Subject, false)
	for _, f := range []struct{ name, value string }{
		{"userId", c.UserID}, {"anonymousId", c.AnonymousID}, {"deviceId", c.DeviceID}, {"advertisingId", c.AdvertisingID},
		{"imei", c.IMEI}, {"androidId", c.AndroidID}, {"mac", c.MAC}, {"country", c.Country}, {"ip", c.IP},
		{"browser", c.Browser}, {"browserVersion", c.BrowserVersion}, {"os", c.OS}, {"osVersion", c.OSVersion},
		{"deviceClass", c.DeviceClass},
	} {
		b = appendField(b, f.name, f.value, true)
	}
	b = append(b, `,"dnt":`...)
	b = strconv.AppendBool(b, c.DNT)
	b = append(b, `,"gpc":`...)
	b = strconv.AppendBool(b, c.GPC)
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"context", c.Context}, {"properties", c.Properties}} {
		if len(f.raw) > 0 {
			b = append(b, ',', '"')
			b = append(b, f.name...)
			b = append(b, '"', ':')
			b = append(b, f.raw...)
		}
	}
	return append(b, '}')
}

// SizeHint is about the size of AppendJSON's output for c, a little more
// for plain strings: a buffer of that capacity is rarely grown.
func (c *Clean) SizeHint() int {
	n := 512 + len(c.Context) + len(c.Properties) + len(c.MessageID) + len(c.Event) + len(c.SourceID) + len(c.Region) +
		len(c.Browser) + len(c.OS) + len(c.Subject) + len(c.UserID) + len(c.AnonymousID) + len(c.DeviceID) +
		len(c.AdvertisingID) + len(c.IMEI) + len(c.AndroidID) + len(c.MAC)
	for _, p := range c.Purposes {
		n += len(p) + 3
	}
	return n
}

// AppendValue appends v, a value decoded by encoding/json with UseNumber
// (maps of string keys, slices, strings, json.Number, bools, nil), as
// json.Marshal would write it: object keys sorted, strings escaped the
// same way. json.Marshal sorts each map's keys through reflection, which
// made re-encoding kept contexts and properties a sixth of the enricher's
// work. Other types fall back to json.Marshal.
func AppendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, x), nil
	case json.Number:
		return append(b, x...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			var err error
			if b, err = AppendValue(b, x[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = AppendValue(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, enc...), nil
}
