package catalogue

// Reading an Inferrer's input: records of the raw topic, Segment events
// and batch bodies, one by one or as lines of a file.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/consentflow/consentflow/internal/event"
)

// AddRecord feeds one JSON record: a raw-topic envelope (event.Envelope),
// a bare Segment event, or a Segment batch body ({"batch": [...]}). It
// returns how many events it added; the error says why the record, or
// some of a batch's events, were not, naming fields and never values.
func (in *Inferrer) AddRecord(raw []byte) (int, error) {
	var probe struct {
		SchemaVersion *int            `json:"schemaVersion"`
		Event         json.RawMessage `json:"event"`
		Batch         json.RawMessage `json:"batch"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return 0, recordError("", err)
	}
	switch {
	case len(probe.Batch) > 0 && !bytes.Equal(probe.Batch, []byte("null")):
		var events []json.RawMessage
		if err := json.Unmarshal(probe.Batch, &events); err != nil {
			return 0, errors.New("batch is not an array")
		}
		added, bad, first := 0, 0, error(nil)
		for i, raw := range events {
			if err := in.addEvent(raw, ""); err != nil {
				if bad++; first == nil {
					first = fmt.Errorf("batch[%d]: %w", i, err)
				}
				continue
			}
			added++
		}
		if bad > 0 {
			return added, fmt.Errorf("%d of the batch's %d events skipped, the first as %w", bad, len(events), first)
		}
		return added, nil
	case probe.SchemaVersion != nil && bytes.HasPrefix(bytes.TrimSpace(probe.Event), []byte("{")):
		if *probe.SchemaVersion != event.SchemaVersion {
			return 0, fmt.Errorf("envelope schemaVersion is not %d", event.SchemaVersion)
		}
		if err := in.addEvent(probe.Event, "event."); err != nil {
			return 0, err
		}
		return 1, nil
	}
	if err := in.addEvent(raw, ""); err != nil {
		return 0, err
	}
	return 1, nil
}

// addEvent decodes and adds one Segment event. The decoding is lenient (an
// event without ids or with an odd timestamp is still a sample of what a
// source sends); prefix is put before the fields errors name.
func (in *Inferrer) addEvent(raw json.RawMessage, prefix string) error {
	var ev event.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return recordError(prefix, err)
	}
	if err := in.Add(&ev); err != nil {
		return fmt.Errorf("%s%w", prefix, err)
	}
	return nil
}

// recordError says why a record did not decode, without its content
// (encoding/json's syntax errors quote it).
func recordError(prefix string, err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" && prefix == "" {
			return errors.New("not a JSON object")
		}
		if typeErr.Field == "" {
			return fmt.Errorf("%s is not a JSON object", strings.TrimSuffix(prefix, "."))
		}
		return fmt.Errorf("%s%s is not a %s", prefix, typeErr.Field, typeErr.Type)
	}
	return errors.New("not JSON")
}

// MaxLineBytes bounds a line ReadNDJSON reads; a longer line is skipped.
const MaxLineBytes = 16 << 20

// ReadNDJSON feeds every line of r (newline-delimited JSON, each line a
// record as AddRecord takes) and calls bad, if not nil, with the number
// (from 1) of each line not read whole and why, in words that never hold
// the line's content. Blank lines are skipped. It returns the events
// added and the error of reading r, if any.
func (in *Inferrer) ReadNDJSON(r io.Reader, bad func(line int, err error)) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	added := 0
	for line := 1; ; line++ {
		var tooLong bool
		var err error
		var size int
		buf, size, tooLong, err = readLine(br, buf[:0])
		if err != nil && err != io.EOF {
			return added, err
		}
		if size == 0 && err == io.EOF {
			return added, nil
		}
		var lineErr error
		switch t := bytes.TrimSpace(buf); {
		case tooLong:
			lineErr = fmt.Errorf("longer than %d bytes", MaxLineBytes)
		case len(t) > 0:
			var n int
			n, lineErr = in.AddRecord(t)
			added += n
		}
		if lineErr != nil && bad != nil {
			bad(line, lineErr)
		}
		if err == io.EOF {
			return added, nil
		}
	}
}

// readLine appends the next line of br to buf, without its newline, and
// returns it with the bytes read; a line longer than MaxLineBytes is read
// to its end but not kept.
func readLine(br *bufio.Reader, buf []byte) ([]byte, int, bool, error) {
	size, tooLong := 0, false
	for {
		chunk, err := br.ReadSlice('\n')
		size += len(chunk)
		if !tooLong {
			if len(buf)+len(chunk) > MaxLineBytes+1 {
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimSuffix(buf, []byte("\n")), size, tooLong, err
	}
}
