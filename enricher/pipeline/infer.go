package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
		err = readRawTopic(ctx, src, func(r *kgo.Record) {
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
// without a consumer group and committing nothing (a kafkax.Tail), until
// src.MaxRecords were read, everything committed before the call was,
// src.Timeout passed or ctx ended; the last two are no error once records
// were read (an unreachable broker is).
func readRawTopic(ctx context.Context, src InferSource, fn func(*kgo.Record)) error {
	ctx, cancel := context.WithTimeout(ctx, src.Timeout)
	defer cancel()
	cfg := src.Raw
	read := 0
	tail, err := kafkax.NewTail(&cfg.Kafka, prometheus.NewRegistry(), "enricher_catalogue_infer", obs.NewLogger(cfg.Log, "enricher", os.Stderr),
		[]string{cfg.Topics.Raw.Name}, func(records []*kgo.Record) {
			for _, r := range records[:min(len(records), src.MaxRecords-read)] {
				fn(r)
			}
			if read = min(read+len(records), src.MaxRecords); read == src.MaxRecords {
				cancel() // enough
			}
		})
	if err != nil {
		return err
	}
	err = tail.Start(ctx)
	// Shutdown waits for the tail to stop: fn is not called afterwards.
	if stopErr := tail.Shutdown(context.Background()); err == nil {
		err = stopErr
	}
	if err != nil && (read == 0 || ctx.Err() == nil) {
		return fmt.Errorf("read %s: %w", cfg.Topics.Raw.Name, err)
	}
	return nil // the time or the count ran out with records read
}
