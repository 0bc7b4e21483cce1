package enricher

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/consentflow/consentflow/enricher/pipeline"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// topicPrefix starts every topic and group this tool creates, so they are
// never confused with the pipeline's own.
const topicPrefix = "enricherbench."

// benchTopics are one run's topics, as the enricher's config declares them:
// the specs of pipeline.Default() with the run's names.
type benchTopics struct {
	raw, baseline, clean, export, dlq, consent, erasures kafkax.TopicSpec
	// The enricher's privacy topics, the run's own too.
	identities, notices, exportNotices, receipts kafkax.TopicSpec
}

func newBenchTopics(runID string) benchTopics {
	d := pipeline.Default()
	name := func(s string) string { return topicPrefix + runID + "." + s }
	t := benchTopics{raw: d.Topics.Raw, clean: d.Topics.Clean, export: d.Export.Topic, dlq: d.Topics.DLQ,
		consent: d.Topics.Consent, erasures: d.Topics.Erasures, identities: d.Topics.Identities,
		notices: d.Topics.ErasureNotices, exportNotices: d.Export.ErasureNotices, receipts: d.Topics.Receipts}
	t.baseline = t.raw // like the raw topic: what the collector's producer writes to
	t.raw.Name, t.baseline.Name, t.clean.Name, t.export.Name = name("raw"), name("baseline"), name("clean"), name("export")
	t.dlq.Name, t.consent.Name, t.erasures.Name = name("dlq"), name("consent"), name("erasures")
	t.identities.Name, t.notices.Name, t.exportNotices.Name, t.receipts.Name = name("identities"), name("notices"), name("exportnotices"), name("receipts")
	for _, s := range []*kafkax.TopicSpec{&t.raw, &t.baseline, &t.clean, &t.export} {
		s.Partitions = 3
	}
	return t
}

func (t benchTopics) specs() []kafkax.TopicSpec {
	return []kafkax.TopicSpec{t.raw, t.baseline, t.clean, t.export, t.dlq, t.consent, t.erasures,
		t.identities, t.notices, t.exportNotices, t.receipts}
}

func (t benchTopics) names() []string {
	var names []string
	for _, s := range t.specs() {
		names = append(names, s.Name)
	}
	return names
}

// apply puts the run's topics into an enricher config.
func (t benchTopics) apply(cfg *pipeline.Config) {
	cfg.Topics.Raw, cfg.Topics.Clean, cfg.Topics.DLQ = t.raw, t.clean, t.dlq
	cfg.Topics.Consent, cfg.Topics.Erasures = t.consent, t.erasures
	cfg.Topics.Identities, cfg.Topics.ErasureNotices, cfg.Topics.Receipts = t.identities, t.notices, t.receipts
	cfg.Export.Topic, cfg.Export.ErasureNotices = t.export, t.exportNotices
}

// createTopics creates every topic of the run the way the enricher would
// (kafkax.EnsureTopics), and returns once they are in metadata.
func createTopics(ctx context.Context, brokers []string, t benchTopics, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg := kafkax.Config{Brokers: brokers, ClientID: "enricherbench-admin"}
	cl, err := kafkax.NewClient(&cfg, prometheus.NewRegistry(), "enricherbench", log)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := kafkax.EnsureTopics(ctx, cl, t.specs(), nil, log); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	return nil
}

// cleanUp deletes the run's topics (a topic never created is fine) and
// consumer groups, and waits until the broker no longer lists the topics.
func cleanUp(adm *kadm.Client, topics, groups []string) error {
	if err := benchkit.DeleteTopicsAndGroups(adm, topics, groups); err != nil {
		return err
	}
	benchkit.Progress("deleted %d topics and %d consumer groups", len(topics), len(groups))
	return nil
}
