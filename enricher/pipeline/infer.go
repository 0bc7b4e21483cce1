package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/catalogue"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/obs"
	"github.com/consentflow/consentflow/internal/policy"
)

// InferSource is where `enricher catalogue infer` reads its sample: Lines
// (newline-delimited raw envelopes, Segment events or batch bodies), else
// the raw topic of Raw's config, from the earliest offsets, at most
// MaxRecords records for at most Timeout.
type InferSource struct {
	Lines      io.Reader
	Raw        *Config
	MaxRecords int
	Timeout    time.Duration
}

// maxSkipsShown bounds the skipped lines or records reported one by one.
const maxSkipsShown = 100

// InferCatalogue writes to out a draft catalogue (catalogue.Inferrer)
// inferred from src, declaring of the context only what the enricher
// keeps, and a summary to errOut. What it skips is reported by line, or
// partition and offset, never by content: raw events hold personal
// information. It is `enricher catalogue infer`.
func InferCatalogue(ctx context.Context, src InferSource, out, errOut io.Writer) error {
	in := catalogue.NewInferrer(catalogue.InferOptions{ContextPaths: policy.ContextPaths()})
	skipped := 0
	skip := func(where string, err error) {
		if skipped++; skipped <= maxSkipsShown {
			fmt.Fprintf(errOut, "enricher catalogue infer: %s: %v\n", where, err)
		}
	}
	var err error
	if src.Lines != nil {
		_, err = in.ReadNDJSON(src.Lines, func(line int, err error) { skip(fmt.Sprintf("line %d", line), err) })
	} else {
		err = readRawTopic(ctx, src, errOut, func(r *kgo.Record) {
			if _, err := in.AddRecord(r.Value); err != nil {
				skip(fmt.Sprintf("partition %d offset %d", r.Partition, r.Offset), err)
			}
		})
	}
	if err != nil {
		return err
	}
	if err := in.WriteYAML(out); err != nil {
		return err
	}
	sum := in.Summary()
	fmt.Fprintf(errOut, "enricher catalogue infer: %d events read, %d lines or records skipped in whole or part; the draft declares %d events and %d paths\n",
		sum.Events, skipped, sum.Declared, sum.Paths)
	return nil
}

// readRawTopic hands fn the raw topic's records from the earliest offsets,
// without a consumer group and committing nothing, until src.MaxRecords
// were read, every partition's end (as at the start) was reached,
// src.Timeout passed or ctx ended; the last two are no error.
func readRawTopic(ctx context.Context, src InferSource, errOut io.Writer, fn func(*kgo.Record)) error {
	ctx, cancel := context.WithTimeout(ctx, src.Timeout)
	defer cancel()
	cfg := src.Raw
	topic := cfg.Topics.Raw.Name
	cl, err := kafkax.NewClient(&cfg.Kafka, prometheus.NewRegistry(), "enricher_catalogue_infer", obs.NewLogger(cfg.Log, "enricher", os.Stderr),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers take offsets: seeing them reaches the end.
		kgo.KeepControlRecords(),
		// Partitions learnt of during the first fetch wait for its end.
		kgo.FetchMaxWait(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	starts, err2 := adm.ListStartOffsets(ctx, topic)
	if err == nil && err2 == nil {
		err = starts.Error()
	}
	if err = cmp.Or(err, err2); err != nil {
		return fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	left := map[int32]int64{} // partitions not read to their end
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); !ok || o.Offset > s.Offset {
			left[o.Partition] = o.Offset
		}
	})
	for read := 0; len(left) > 0 && read < src.MaxRecords; {
		fetches := cl.PollRecords(ctx, src.MaxRecords-read)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(_ string, p int32, err error) {
			fmt.Fprintf(errOut, "enricher catalogue infer: fetch partition %d: %v\n", p, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if !r.Attrs.IsControl() && read < src.MaxRecords {
				read++
				fn(r)
			}
		})
	}
	return nil
}
