package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/consentflow/consentflow/internal/consentstore"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/obs"
)

// RekeyErasures rewrites the suppression list's records keyed by raw
// identifiers, as versions before pseudonym keys wrote them: for each, the
// records keyed by the identifier's pseudonyms under the in-region key in
// service, then, once Kafka acknowledged those, a tombstone of the raw
// key, which compaction then removes. Running it again finds nothing to
// do. It is `enricher erasures rekey`; it reports counts to out, never a
// key.
func RekeyErasures(ctx context.Context, cfg Config, out io.Writer) (int, error) {
	keys, err := cfg.Pseudonym.Keyring()
	if err != nil {
		return 0, fmt.Errorf("pseudonym: %w", err)
	}
	store := consentstore.New(1, keys)
	log := obs.NewLogger(cfg.Log, "enricher", os.Stderr)
	topic := cfg.Topics.Erasures.Name
	latest := map[string][]byte{} // raw key -> its latest value (nil: already tombstoned)
	tail, err := kafkax.NewTail(&cfg.Kafka, prometheus.NewRegistry(), "enricher_erasures_rekey", log, []string{topic}, func(records []*kgo.Record) {
		for _, r := range records {
			if consentstore.RawKeyed(string(r.Key)) {
				latest[string(r.Key)] = r.Value
			}
		}
	})
	if err != nil {
		return 0, err
	}
	err = tail.Start(ctx) // returns once it read what the topic held
	if stopErr := tail.Shutdown(context.Background()); err == nil {
		err = stopErr
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", topic, err)
	}
	var rekeyed, tombstones []*kgo.Record
	for raw, value := range latest {
		if value == nil {
			continue
		}
		rec, _ := event.DecodeErasureRecord(value) // unreadable: both kinds, as the store reads it
		rekeyed = append(rekeyed, store.SuppressionRecords(topic, raw, rec)...)
		tombstones = append(tombstones, &kgo.Record{Topic: topic, Key: []byte(raw)})
	}
	if len(tombstones) == 0 {
		fmt.Fprintf(out, "enricher erasures rekey: no record of %s is keyed by a raw identifier\n", topic)
		return 0, nil
	}
	cl, err := kafkax.NewClient(&cfg.Kafka, prometheus.NewRegistry(), "enricher_erasures_rekey", log)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	// The pseudonym records first, acknowledged, then the tombstones: at
	// no time is a subject in neither.
	if err := cl.ProduceSync(ctx, rekeyed...).FirstErr(); err != nil {
		return 0, fmt.Errorf("write the pseudonym-keyed records: %w", err)
	}
	if err := cl.ProduceSync(ctx, tombstones...).FirstErr(); err != nil {
		return 0, fmt.Errorf("tombstone the raw keys (run it again): %w", err)
	}
	fmt.Fprintf(out, "enricher erasures rekey: %d records keyed by raw identifiers rewritten as %d keyed by pseudonyms, raw keys tombstoned\n",
		len(tombstones), len(rekeyed))
	return len(tombstones), nil
}
