package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/consentflow/consentflow/scripts/internal/benchkit"
)

// topicPrefix starts every topic this tool creates, so leftovers from an
// interrupted run can be found (-check-topics) and are never confused with
// the pipeline's own topics.
const topicPrefix = "ingestbench."

// benchTopics are one run's topics.
type benchTopics struct {
	raw, consent string // the collector's (it creates them itself)
	baseline     string // the raw producer's (created here)
}

func newBenchTopics(runID string) benchTopics {
	p := topicPrefix + runID
	return benchTopics{raw: p + ".raw", consent: p + ".consent", baseline: p + ".baseline"}
}

func (t benchTopics) all() []string { return []string{t.raw, t.consent, t.baseline} }

func benchNames(names []string) []string {
	var bench []string
	for _, name := range names {
		if strings.HasPrefix(name, topicPrefix) {
			bench = append(bench, name)
		}
	}
	return bench
}

// checkTopics is -check-topics: it prints the bench topics left on the
// broker and fails if there are any.
func checkTopics(brokers []string) error {
	adm, err := benchkit.NewAdmin(brokers, "ingestbench-admin")
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	left := benchNames(all.Names())
	fmt.Printf("%d topics on %s; %d with prefix %q\n", len(all.Names()), strings.Join(brokers, ","), len(left), topicPrefix)
	for _, name := range left {
		fmt.Println("  left behind:", name)
	}
	if len(left) > 0 {
		return fmt.Errorf("%d bench topics remain", len(left))
	}
	return nil
}
