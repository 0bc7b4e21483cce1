package benchkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// NewAdmin is an admin client of brokers. Closing it closes its Kafka
// client too.
func NewAdmin(brokers []string, clientID string) (*kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID(clientID))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return kadm.NewClient(cl), nil
}

// CreateTopic creates topic name with partitions partitions, one replica
// (the local broker has one) and configs (nil: the broker's defaults),
// within at most 15 s.
func CreateTopic(ctx context.Context, adm *kadm.Client, name string, partitions int32, configs map[string]*string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	return nil
}

// DeleteTopicsAndGroups deletes a run's consumer groups, then its topics,
// and waits, for at most 10 s, until the broker no longer lists the
// topics. Topics and groups that were never created are fine. It works on
// a context of its own, bounded at 30 s, since the run's context may be
// what ended the run.
func DeleteTopicsAndGroups(adm *kadm.Client, topics, groups []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if len(groups) > 0 {
		resps, err := adm.DeleteGroups(ctx, groups...)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete groups: %w", err))
		}
		for _, r := range resps.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
				errs = append(errs, fmt.Errorf("delete group %s: %w", r.Group, r.Err))
			}
		}
	}
	if len(topics) == 0 {
		return errors.Join(errs...)
	}
	resps, err := adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("delete topics: %w", err))...)
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("delete topic %s: %w", r.Topic, r.Err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for range 20 {
		listed, err := adm.ListTopics(ctx)
		if err == nil && !slices.ContainsFunc(listed.Names(), func(n string) bool { return slices.Contains(topics, n) }) {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("topics %v still listed 10 s after deletion", topics)
}

// Follow reads topic from its start as client clientID, read_committed
// (a record of a transaction shows once it has committed), polling for at
// most maxWait, and hands each record to f with when its poll returned,
// until ctx ends (nil) or a fetch fails (the error).
func Follow(ctx context.Context, brokers []string, clientID, topic string, maxWait time.Duration, f func(r *kgo.Record, polled time.Time)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID(clientID), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(maxWait))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		polled := time.Now()
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) && ferr == nil {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("read %s: %w", topic, ferr)
		}
		fetches.EachRecord(func(r *kgo.Record) { f(r, polled) })
	}
}
