// Package dlqtest checks dead letters in tests against the real Kafka:
// that each is a pointer to its record (kafkax.DeadLetter), holds none of
// the record's input, and finds the record it names.
package dlqtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/kafkax"
)

// Check checks that dead is a pointer to a record and nothing
// more (kafkax.DeadLetter): it has no key; its value is the pointer;
// neither the value nor any header holds any of secrets; and the record it
// names (topic, partition, offset), fetched from Kafka, has the value
// whose SHA-256 and length it carries. It returns that record.
func Check(t testing.TB, ctx context.Context, brokers []string, dead *kgo.Record, secrets []string) *kgo.Record {
	t.Helper()
	if dead.Key != nil {
		t.Errorf("dead letter at offset %d has a key %q", dead.Offset, dead.Key)
	}
	var p kafkax.DeadLetterPointer
	if err := json.Unmarshal(dead.Value, &p); err != nil {
		t.Errorf("dead letter at offset %d: value %q is not a pointer: %v", dead.Offset, dead.Value, err)
	}
	held := [][]byte{dead.Key, dead.Value}
	for _, h := range dead.Headers {
		held = append(held, []byte(h.Key), h.Value)
	}
	for _, s := range secrets {
		for _, b := range held {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("dead letter at offset %d holds the input %q: %q", dead.Offset, s, b)
			}
		}
	}
	partition, err1 := strconv.ParseInt(kafkax.Header(dead, kafkax.HeaderPartition), 10, 32)
	offset, err2 := strconv.ParseInt(kafkax.Header(dead, kafkax.HeaderOffset), 10, 64)
	topic := kafkax.Header(dead, kafkax.HeaderTopic)
	if err1 != nil || err2 != nil || topic != p.Topic || int32(partition) != p.Partition || offset != p.Offset {
		t.Fatalf("dead letter at offset %d: headers %+v and value %+v do not name the same record", dead.Offset, dead.Headers, p)
	}
	src := FetchRecord(t, ctx, brokers, topic, int32(partition), offset)
	sum := sha256.Sum256(src.Value)
	if hex.EncodeToString(sum[:]) != kafkax.Header(dead, kafkax.HeaderValueSHA256) || p.ValueSHA256 != hex.EncodeToString(sum[:]) ||
		strconv.Itoa(len(src.Value)) != kafkax.Header(dead, kafkax.HeaderValueBytes) || p.ValueBytes != len(src.Value) {
		t.Errorf("dead letter at offset %d: %s/%d/%d has a value of %d bytes and SHA-256 %x, the dead letter says %+v",
			dead.Offset, topic, partition, offset, len(src.Value), sum, p)
	}
	return src
}

// FetchRecord reads the record at offset of a topic's partition, as an
// operator fetches the record a dead letter points at.
func FetchRecord(t testing.TB, ctx context.Context, brokers []string, topic string, partition int32, offset int64) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s/%d/%d: no record before %v", topic, partition, offset, ctx.Err())
		}
		for _, r := range fetches.Records() {
			if r.Offset == offset {
				return r
			}
		}
	}
}

// JSONValues lists the strings and numbers of a JSON document (not its
// names) of min bytes or more: the input values a dead letter must not
// hold.
func JSONValues(t testing.TB, doc []byte, min int) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("JSONValues of %s: %v", doc, err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if len(v) >= min {
				out = append(out, v)
			}
		case json.Number:
			if len(v) >= min {
				out = append(out, v.String())
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}
