package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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

func newAdmin(brokers []string) (*kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("ingestbench-admin"))
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// createBaselineTopic creates the raw producer's topic like the collector's
// raw topic: 3 partitions, one replica.
func createBaselineTopic(ctx context.Context, adm *kadm.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, 3, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	return nil
}

// deleteTopics deletes names (a topic that was never created is fine) and
// waits, for at most 10 s, until the broker no longer lists them.
func deleteTopics(adm *kadm.Client, names []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resps, err := adm.DeleteTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	var errs []error
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("delete topic %s: %w", r.Topic, r.Err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for range 20 {
		left, err := listBenchTopics(ctx, adm)
		if err == nil && !slices.ContainsFunc(left, func(t string) bool { return slices.Contains(names, t) }) {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("topics %v still listed 10 s after deletion", names)
}

// listBenchTopics lists every topic with topicPrefix, from any run.
func listBenchTopics(ctx context.Context, adm *kadm.Client) ([]string, error) {
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	return benchNames(topics.Names()), nil
}

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
	adm, err := newAdmin(brokers)
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
