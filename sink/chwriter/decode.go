package chwriter

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/jsonscan"
)

// Decoding a clean record is most of the sink's CPU. decodeRow reads the
// record in one pass (internal/jsonscan) straight into the row the insert
// takes its columns from: string fields are substrings of one copy of the
// record, the properties are flattened while they are scanned, and
// nothing goes through reflection.
//
// Like the collector's one-pass decoders (internal/event/fast.go) it
// decides only the plain case: a valid object whose names are spelled
// exactly as event.Clean spells them (no escapes, no case variants, no
// duplicates), values of the fields' own JSON types, times in UTC
// ("...Z"), properties an object or null, and a record that passes
// validation. Anything else, every refusal included, goes to the reference
// path (event.DecodeClean, then flattenProperties), so what is refused and
// the words of the refusal are the reference's by construction;
// FuzzDecodeRow checks that the plain case agrees with it too.

func decodeRow(rec *kgo.Record) (row, error) {
	r := row{rec: rec, partition: rec.Partition, offset: rec.Offset}
	if decodeFast(rec.Value, &r) {
		return r, nil
	}
	return decodeRowReference(rec)
}

// decodeRowReference is the reference path: encoding/json's semantics.
func decodeRowReference(rec *kgo.Record) (row, error) {
	c, err := event.DecodeClean(rec.Value)
	if err != nil {
		return row{}, fmt.Errorf("decode clean event: %w", err)
	}
	keys, values, err := flattenProperties(c.Properties)
	if err != nil {
		return row{}, err
	}
	return row{rec: rec, clean: c, propKeys: keys, propValues: values, partition: rec.Partition, offset: rec.Offset}, nil
}

// Indexes of event.Clean's fields, as bits in a seen set.
const (
	cSchemaVersion = iota
	cMessageID
	cType
	cEvent
	cTimestamp
	cReceivedAt
	cSourceID
	cRegion
	cPurposes
	cSubject
	cUserID
	cAnonymousID
	cDeviceID
	cAdvertisingID
	cIMEI
	cAndroidID
	cMAC
	cCountry
	cIP
	cBrowser
	cBrowserVersion
	cOS
	cOSVersion
	cDeviceClass
	cDNT
	cGPC
	cContext
	cProperties
	cleanFieldCount
)

// cleanNames are the JSON names of event.Clean's fields, by index.
var cleanNames = [cleanFieldCount]string{
	"schemaVersion", "messageId", "type", "event", "timestamp", "receivedAt", "sourceId", "region",
	"purposes", "subject", "userId", "anonymousId", "deviceId", "advertisingId", "imei", "androidId",
	"mac", "country", "ip", "browser", "browserVersion", "os", "osVersion", "deviceClass",
	"dnt", "gpc", "context", "properties",
}

// cleanIndex is the field name spells exactly, or -1. A switch, which
// compiles to a search by length and bytes: a map's hashing was a sixth of
// the decoding.
func cleanIndex(name []byte) int {
	switch string(name) {
	case "schemaVersion":
		return cSchemaVersion
	case "messageId":
		return cMessageID
	case "type":
		return cType
	case "event":
		return cEvent
	case "timestamp":
		return cTimestamp
	case "receivedAt":
		return cReceivedAt
	case "sourceId":
		return cSourceID
	case "region":
		return cRegion
	case "purposes":
		return cPurposes
	case "subject":
		return cSubject
	case "userId":
		return cUserID
	case "anonymousId":
		return cAnonymousID
	case "deviceId":
		return cDeviceID
	case "advertisingId":
		return cAdvertisingID
	case "imei":
		return cIMEI
	case "androidId":
		return cAndroidID
	case "mac":
		return cMAC
	case "country":
		return cCountry
	case "ip":
		return cIP
	case "browser":
		return cBrowser
	case "browserVersion":
		return cBrowserVersion
	case "os":
		return cOS
	case "osVersion":
		return cOSVersion
	case "deviceClass":
		return cDeviceClass
	case "dnt":
		return cDNT
	case "gpc":
		return cGPC
	case "context":
		return cContext
	case "properties":
		return cProperties
	}
	return -1
}

const (
	nameUnknown = -1 // a name no field has: its value is skipped
	nameUnsure  = -2 // a name encoding/json might match to a field
)

// cleanField is the field name spells exactly, nameUnsure when it matches
// one only without regard to case (encoding/json's rule) or holds
// non-ASCII bytes (which case folding can map onto ASCII), else
// nameUnknown.
func cleanField(name []byte) int {
	if f := cleanIndex(name); f >= 0 {
		return f
	}
	for _, c := range name {
		if c >= 0x80 {
			return nameUnsure
		}
	}
	for _, n := range cleanNames {
		if strings.EqualFold(string(name), n) {
			return nameUnsure
		}
	}
	return nameUnknown
}

// cleanDecoder is one record's pass.
type cleanDecoder struct {
	jsonscan.Scanner
	text string // Scanner.B as a string, for substrings
	r    *row
	// props holds the properties while they are scanned, for sorting.
	props []property
}

// property is one top-level property, unescaped.
type property struct{ key, value string }

// decodeFast fills r from raw in one pass: false, with r partly written,
// when raw is not the plain case.
func decodeFast(raw []byte, r *row) bool {
	// The row's strings share the record's memory rather than copy it: a
	// record's value is never written after franz-go hands it over (the
	// sink gives it no buffer pool, kgo.WithPools), the row keeps the
	// record for the dead-letter topic anyway, and the insert copies
	// every value into clickhouse-go's buffers.
	text := unsafe.String(unsafe.SliceData(raw), len(raw))
	d := cleanDecoder{Scanner: jsonscan.Scanner{B: raw, RefuseSurrogates: true}, text: text, r: r}
	d.WS()
	if !d.object() {
		return false
	}
	d.WS()
	if d.I != len(raw) {
		return false
	}
	c := &r.clean
	// event.DecodeClean's checks; their refusals are its own to word.
	if c.SchemaVersion != event.SchemaVersion || c.MessageID == "" || c.Subject == "" ||
		!event.InRange(c.Timestamp) || !event.InRange(c.ReceivedAt) {
		return false
	}
	if r.propKeys == nil {
		r.propKeys, r.propValues = []string{}, []string{}
	}
	return true
}

// object scans the record's top-level object.
func (d *cleanDecoder) object() bool {
	if d.I >= len(d.B) || d.B[d.I] != '{' {
		return false
	}
	more, ok := d.Open('}')
	var seen uint32
	for ok && more {
		if d.I >= len(d.B) || d.B[d.I] != '"' {
			return false
		}
		ks, ke, str := d.Str()
		if !str || d.Escaped {
			return false
		}
		f := cleanField(d.B[ks:ke])
		switch {
		case f == nameUnsure:
			return false
		case f >= 0 && seen&(1<<f) != 0:
			return false // encoding/json keeps the last, mostly
		case f >= 0:
			seen |= 1 << f
		}
		d.WS()
		if d.I >= len(d.B) || d.B[d.I] != ':' {
			return false
		}
		d.I++
		d.WS()
		if !d.member(f) {
			return false
		}
		more, ok = d.After('}')
	}
	return ok
}

// member scans the value of field f at d.I into the row.
func (d *cleanDecoder) member(f int) bool {
	if d.I >= len(d.B) {
		return false
	}
	c := &d.r.clean
	isNull := d.B[d.I] == 'n'
	switch f {
	case nameUnknown:
		return d.Value()
	case cContext:
		start := d.I
		if !d.Value() {
			return false
		}
		c.Context = json.RawMessage(d.B[start:d.I:d.I])
		return true
	case cProperties:
		start := d.I
		if isNull {
			if !d.Literal("null") {
				return false
			}
			d.r.propKeys, d.r.propValues = []string{}, []string{}
		} else if !d.properties() {
			return false
		}
		c.Properties = json.RawMessage(d.B[start:d.I:d.I])
		return true
	}
	if isNull {
		// null leaves a field as it was, a slice nil.
		if f == cPurposes {
			c.Purposes = nil
		}
		return d.Literal("null")
	}
	switch f {
	case cSchemaVersion:
		v, ok := d.smallInt()
		c.SchemaVersion = v
		return ok
	case cDNT, cGPC:
		v := d.B[d.I] == 't'
		if !d.Literal("true") && !d.Literal("false") {
			return false
		}
		if f == cDNT {
			c.DNT = v
		} else {
			c.GPC = v
		}
		return true
	case cPurposes:
		return d.purposes()
	}
	v, ok := d.string()
	if !ok {
		return false
	}
	switch f {
	case cTimestamp, cReceivedAt:
		t, ok := parseUTC(v)
		if f == cTimestamp {
			c.Timestamp = t
		} else {
			c.ReceivedAt = t
		}
		return ok
	case cMessageID:
		c.MessageID = v
	case cType:
		c.Type = v
	case cEvent:
		c.Event = v
	case cSourceID:
		c.SourceID = v
	case cRegion:
		c.Region = v
	case cSubject:
		c.Subject = v
	case cUserID:
		c.UserID = v
	case cAnonymousID:
		c.AnonymousID = v
	case cDeviceID:
		c.DeviceID = v
	case cAdvertisingID:
		c.AdvertisingID = v
	case cIMEI:
		c.IMEI = v
	case cAndroidID:
		c.AndroidID = v
	case cMAC:
		c.MAC = v
	case cCountry:
		c.Country = v
	case cIP:
		c.IP = v
	case cBrowser:
		c.Browser = v
	case cBrowserVersion:
		c.BrowserVersion = v
	case cOS:
		c.OS = v
	case cOSVersion:
		c.OSVersion = v
	case cDeviceClass:
		c.DeviceClass = v
	}
	return true
}

// string scans the string at d.I and returns it unescaped: a substring of
// the record when it holds no escape.
func (d *cleanDecoder) string() (string, bool) {
	if d.I >= len(d.B) || d.B[d.I] != '"' {
		return "", false
	}
	s, e, ok := d.Str()
	if !ok {
		return "", false
	}
	if !d.Escaped {
		return d.text[s:e], true
	}
	u, ok := jsonscan.Unescape(nil, d.B[s:e])
	return string(u), ok
}

// smallInt scans a number that is a plain integer of at most 9 digits
// (schemaVersion); anything else is the reference's to read or refuse.
func (d *cleanDecoder) smallInt() (int, bool) {
	start := d.I
	if !d.Number() {
		return 0, false
	}
	digits := d.B[start:d.I]
	neg := digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	if len(digits) > 9 {
		return 0, false
	}
	v := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// purposes scans the purposes array: strings only.
func (d *cleanDecoder) purposes() bool {
	if d.B[d.I] != '[' {
		return false
	}
	more, ok := d.Open(']')
	p := make([]string, 0, 4)
	for ok && more {
		v, str := d.string()
		if !str {
			return false
		}
		p = append(p, v)
		more, ok = d.After(']')
	}
	d.r.clean.Purposes = p
	return ok
}

// properties scans the properties object into the row's parallel key and
// value arrays, as flattenProperties makes them: sorted by key, the last
// of a repeated key, string values unescaped, others as their JSON text.
func (d *cleanDecoder) properties() bool {
	if d.B[d.I] != '{' {
		return false // not an object: the reference refuses it
	}
	more, ok := d.Open('}')
	var room [16]property
	props := room[:0]
	for ok && more {
		if d.I >= len(d.B) || d.B[d.I] != '"' {
			return false
		}
		key, str := d.string()
		if !str {
			return false
		}
		d.WS()
		if d.I >= len(d.B) || d.B[d.I] != ':' {
			return false
		}
		d.I++
		d.WS()
		var value string
		if d.I < len(d.B) && d.B[d.I] == '"' {
			if value, str = d.string(); !str {
				return false
			}
		} else {
			start := d.I
			if !d.Value() {
				return false
			}
			value = d.text[start:d.I]
		}
		props = append(props, property{key, value})
		more, ok = d.After('}')
	}
	if !ok {
		return false
	}
	d.r.propKeys, d.r.propValues = sortedProperties(props)
	return true
}

// parseUTC parses the RFC 3339 times the enricher writes
// (time.RFC3339Nano in UTC: "2006-01-02T15:04:05.999999999Z"); false for
// any other form, which the reference reads.
func parseUTC(s string) (time.Time, bool) {
	if len(s) < 20 || s[len(s)-1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	nsec := 0
	if frac := s[19 : len(s)-1]; frac != "" {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		n, ok := atoi(frac[1:])
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			n *= 10
		}
		nsec = n
	}
	year, ok1 := atoi(s[0:4])
	month, ok2 := atoi(s[5:7])
	day, ok3 := atoi(s[8:10])
	hour, ok4 := atoi(s[11:13])
	minute, ok5 := atoi(s[14:16])
	sec, ok6 := atoi(s[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // the 31st of a shorter month, say
		return time.Time{}, false
	}
	return t, true
}

// atoi reads s, decimal digits only.
func atoi(s string) (int, bool) {
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}
