package chwriter

// The insert: a batch's rows laid out as the events table's columns and
// sent in one INSERT; the properties flattened into the parallel arrays
// analysts filter on.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/consentflow/consentflow/internal/event"
)

func (w *Writer) insert(ctx context.Context, rows []*row) error {
	start := time.Now()
	if w.replicas != nil {
		// A resent block is dropped only with de-duplication on, which a
		// server profile could have turned off (cluster.go).
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplicate": 1}))
	}
	batch, err := w.conn.PrepareBatch(ctx, eventsInsert(w.cfg.Database))
	if err != nil {
		return fmt.Errorf("prepare insert: %w", err)
	}
	// Whole columns at once: clickhouse-go's per-row Append converts each
	// of the 31 values through an interface, which cost as much CPU as
	// decoding the record.
	err = eachEventColumn(rows, func(i int, col any) error {
		if err := appendColumn(batch.Column(i), col); err != nil {
			return fmt.Errorf("append column %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		_ = batch.Abort()
		return err
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send insert: %w", err)
	}
	w.metrics.insertDuration.Observe(time.Since(start).Seconds())
	w.metrics.batchRows.Observe(float64(len(rows)))
	w.metrics.rowsInserted.Add(float64(len(rows)))
	return nil
}

// appendColumn appends a whole column. An array column goes row by row:
// clickhouse-go appends a [][]string through reflection, a []string
// without.
func appendColumn(c driver.BatchColumn, col any) error {
	arrays, ok := col.([][]string)
	if !ok {
		return c.Append(col)
	}
	for _, a := range arrays {
		if err := c.AppendRow(a); err != nil {
			return err
		}
	}
	return nil
}

// eachEventColumn lays rows out as the columns of eventColumns and hands
// them to add in that order. One scratch slice per Go type serves every
// column of that type, each column overwriting the last: clickhouse-go
// copies the values into its own buffers as they are appended, and
// thirty slices of a batch's length each would be garbage to collect.
func eachEventColumn(rows []*row, add func(i int, col any) error) error {
	n := len(rows)
	strs, raws, arrays := make([]string, n), make([]json.RawMessage, n), make([][]string, n)
	times, flags := make([]time.Time, n), make([]uint8, n)
	str := func(f func(c *event.Clean) string) any {
		for i := range rows {
			strs[i] = f(&rows[i].clean)
		}
		return strs
	}
	raw := func(f func(c *event.Clean) json.RawMessage) any {
		for i := range rows {
			raws[i] = f(&rows[i].clean)
		}
		return raws
	}
	array := func(f func(r *row) []string) any {
		for i := range rows {
			arrays[i] = f(rows[i])
		}
		return arrays
	}
	tm := func(f func(c *event.Clean) time.Time) any {
		for i := range rows {
			times[i] = f(&rows[i].clean)
		}
		return times
	}
	flag := func(f func(c *event.Clean) bool) any {
		for i := range rows {
			flags[i] = boolByte(f(&rows[i].clean))
		}
		return flags
	}
	columns := []func() any{
		func() any { return str(func(c *event.Clean) string { return c.MessageID }) },
		func() any { return str(func(c *event.Clean) string { return c.Type }) },
		func() any { return str(func(c *event.Clean) string { return c.Event }) },
		func() any { return tm(func(c *event.Clean) time.Time { return c.Timestamp }) },
		func() any { return tm(func(c *event.Clean) time.Time { return c.ReceivedAt }) },
		func() any { return str(func(c *event.Clean) string { return c.SourceID }) },
		func() any { return str(func(c *event.Clean) string { return c.Region }) },
		func() any { return str(func(c *event.Clean) string { return c.Subject }) },
		func() any { return str(func(c *event.Clean) string { return c.UserID }) },
		func() any { return str(func(c *event.Clean) string { return c.AnonymousID }) },
		func() any { return str(func(c *event.Clean) string { return c.DeviceID }) },
		func() any { return str(func(c *event.Clean) string { return c.AdvertisingID }) },
		func() any { return str(func(c *event.Clean) string { return c.IP }) },
		func() any { return flag(func(c *event.Clean) bool { return c.DNT }) },
		func() any { return flag(func(c *event.Clean) bool { return c.GPC }) },
		// Raw JSON is copied into clickhouse-go's buffer without a string
		// in between.
		func() any { return raw(func(c *event.Clean) json.RawMessage { return c.Context }) },
		func() any { return raw(func(c *event.Clean) json.RawMessage { return c.Properties }) },
		func() any { return array(func(r *row) []string { return r.propKeys }) },
		func() any { return array(func(r *row) []string { return r.propValues }) },
		func() any {
			col := make([]int32, n)
			for i := range rows {
				col[i] = rows[i].partition
			}
			return col
		},
		func() any {
			col := make([]int64, n)
			for i := range rows {
				col[i] = rows[i].offset
			}
			return col
		},
		func() any { return array(func(r *row) []string { return r.clean.Purposes }) },
		func() any { return str(func(c *event.Clean) string { return c.IMEI }) },
		func() any { return str(func(c *event.Clean) string { return c.AndroidID }) },
		func() any { return str(func(c *event.Clean) string { return c.MAC }) },
		func() any { return str(func(c *event.Clean) string { return c.Country }) },
		func() any { return str(func(c *event.Clean) string { return c.Browser }) },
		func() any { return str(func(c *event.Clean) string { return c.BrowserVersion }) },
		func() any { return str(func(c *event.Clean) string { return c.OS }) },
		func() any { return str(func(c *event.Clean) string { return c.OSVersion }) },
		func() any { return str(func(c *event.Clean) string { return c.DeviceClass }) },
	}
	for i, col := range columns {
		if err := add(i, col()); err != nil {
			return err
		}
	}
	return nil
}

// row is one clean event with what the table adds to it.
type row struct {
	// rec is the record the row came from, for the DLQ if ClickHouse
	// refuses the row.
	rec                  *kgo.Record
	clean                event.Clean
	propKeys, propValues []string
	partition            int32
	offset               int64
}

// flattenProperties lists the top-level properties as parallel key and value
// arrays, sorted by key, so analysts can filter without parsing JSON. String
// values are kept as they are; others as their JSON text.
func flattenProperties(raw json.RawMessage) ([]string, []string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return []string{}, []string{}, nil
	}
	notObject := func(err error) error {
		// jsontext's words quote the input (a character, the property's
		// name in their JSON pointer): the redacted form leaves them out.
		return &event.FieldError{Field: "properties", Msg: "must be an object: " + err.Error(), Redacted: "must be a JSON object"}
	}
	// One pass over the top level with jsontext: decoding into a map
	// scanned the properties twice and allocated every value.
	dec := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		if err == nil {
			err = fmt.Errorf("got %v", tok.Kind())
		}
		return nil, nil, notObject(err)
	}
	var props []property
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return nil, nil, notObject(err)
		}
		key := name.String() // before the next read voids the token
		value, err := dec.ReadValue()
		if err != nil {
			return nil, nil, notObject(err)
		}
		text := string(value)
		if value.Kind() == '"' {
			unquoted, err := jsontext.AppendUnquote(nil, value)
			if err != nil {
				return nil, nil, notObject(err)
			}
			text = string(unquoted)
		}
		props = append(props, property{key, text})
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, nil, notObject(err)
	}
	keys, values := sortedProperties(props)
	return keys, values, nil
}

// sortedProperties are props sorted by key, as parallel columns; of a
// repeated key the last value counts, as in a map.
func sortedProperties(props []property) (keys, values []string) {
	slices.SortStableFunc(props, func(a, b property) int { return strings.Compare(a.key, b.key) })
	keys = make([]string, 0, len(props))
	values = make([]string, 0, len(props))
	for i, p := range props {
		if i+1 < len(props) && props[i+1].key == p.key {
			continue
		}
		keys = append(keys, p.key)
		values = append(values, p.value)
	}
	return keys, values
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
