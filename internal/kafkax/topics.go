package kafkax

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/consentflow/consentflow/internal/config"
)

// TopicSpec is a topic a service reads or writes, as config declares it.
type TopicSpec struct {
	Name string `mapstructure:"name"`
	// Partitions is the partition count. Zero means 3.
	Partitions int32 `mapstructure:"partitions"`
	// ReplicationFactor is the replica count. Zero means 1 (one local node);
	// production clusters set 3.
	ReplicationFactor int16 `mapstructure:"replication_factor"`
	// CleanupPolicy is delete or compact. Empty means delete.
	CleanupPolicy string `mapstructure:"cleanup_policy"`
	// Retention is how long a delete topic keeps records. Zero means the
	// broker's default; negative (-1s) keeps them forever.
	Retention time.Duration `mapstructure:"retention"`
	// MinInsyncReplicas is how many replicas must have a record before an
	// acks=all produce succeeds. Zero means the broker's default (often 1:
	// set 2 with replication factor 3, or a 200 may rest on one disk).
	MinInsyncReplicas int `mapstructure:"min_insync_replicas"`
}

// Validate checks the spec under prefix (for example topics.raw).
func (t TopicSpec) Validate(prefix string) error {
	var errs []error
	if t.Name == "" {
		errs = append(errs, config.Invalid(prefix+".name", "is required"))
	}
	if t.Partitions < 0 {
		errs = append(errs, config.Invalid(prefix+".partitions", "must not be negative"))
	}
	if t.ReplicationFactor < 0 {
		errs = append(errs, config.Invalid(prefix+".replication_factor", "must not be negative"))
	}
	if p := t.CleanupPolicy; p != "" && p != "delete" && p != "compact" {
		errs = append(errs, config.Invalid(prefix+".cleanup_policy", "must be delete or compact, got %q", p))
	}
	if t.MinInsyncReplicas < 0 || (t.MinInsyncReplicas > 0 && t.MinInsyncReplicas > int(t.replicationFactor())) {
		errs = append(errs, config.Invalid(prefix+".min_insync_replicas", "must be between 0 and replication_factor (%d), got %d", t.replicationFactor(), t.MinInsyncReplicas))
	}
	if t.Retention > 0 && t.Retention < time.Millisecond {
		errs = append(errs, config.Invalid(prefix+".retention", "must be zero (broker default), negative (forever) or at least 1ms, got %v", t.Retention))
	}
	return errors.Join(errs...)
}

// TopicKind is what a topic keeps, and so how it must be configured. Each
// kind's rule is declared here once; every service names the kind of each
// topic it declares (TopicKind.Validate) instead of writing the rule out.
type TopicKind int

const (
	// Plain topics have no rule beyond TopicSpec.Validate: clean and
	// export events, dead letters.
	Plain TopicKind = iota
	// Compacted topics hold the latest record per key (a subject's consent
	// or identity links, a request's receipts, the erasure log): their
	// cleanup policy is compact.
	Compacted
	// KeptForever topics are read whole to clean restored backups and
	// replays (erasure notices): their retention is negative.
	KeptForever
	// Transient topics carry raw identifiers in passing (raw events,
	// erasure requests): deleted, with a positive retention, never kept
	// for good.
	Transient
)

// Validate checks spec, the topic declared under prefix (for example
// topics.raw), as a topic of kind k: TopicSpec.Validate, then the kind's
// rule. A key the spec's own check refuses is not judged again by the
// kind.
func (k TopicKind) Validate(prefix string, spec TopicSpec) error {
	errs := []error{spec.Validate(prefix)}
	policy, retention := spec.CleanupPolicy, spec.Retention
	policyOK := policy == "" || policy == "delete" || policy == "compact"
	retentionOK := retention <= 0 || retention >= time.Millisecond
	switch {
	case k == Compacted && policyOK && policy != "compact":
		errs = append(errs, config.Invalid(prefix+".cleanup_policy", "must be compact: the topic holds the latest record per key, got %q", policy))
	case k == KeptForever && retentionOK && retention >= 0:
		errs = append(errs, config.Invalid(prefix+".retention", "must be negative (-1s: kept forever): restored backups and replays are cleaned by reading it whole, got %v", retention))
	case k == Transient:
		if policyOK && policy == "compact" {
			errs = append(errs, config.Invalid(prefix+".cleanup_policy", "must be delete: the topic holds raw identifiers, for its retention only"))
		}
		if retentionOK && retention <= 0 {
			errs = append(errs, config.Invalid(prefix+".retention", "must be a positive duration such as 6h: the topic holds raw identifiers, never for good"))
		}
	}
	return errors.Join(errs...)
}

func (t TopicSpec) partitions() int32 {
	if t.Partitions == 0 {
		return 3
	}
	return t.Partitions
}

func (t TopicSpec) replicationFactor() int16 {
	if t.ReplicationFactor == 0 {
		return 1
	}
	return t.ReplicationFactor
}

// wantConfigs are the topic configs this spec pins.
func (t TopicSpec) wantConfigs() map[string]string {
	policy := t.CleanupPolicy
	if policy == "" {
		policy = "delete"
	}
	want := map[string]string{"cleanup.policy": policy}
	switch {
	case t.Retention > 0:
		want["retention.ms"] = strconv.FormatInt(t.Retention.Milliseconds(), 10)
		// Kafka deletes whole segments, once their newest record is past
		// retention, and the open segment rolls only after segment.ms (7
		// days by default): on a quiet topic, raw data of a 6h retention
		// would live a week. Rolling at a quarter of the retention (at
		// least an hour, at most the default) keeps a record at most 1.25
		// retentions.
		want["segment.ms"] = strconv.FormatInt(min(max(t.Retention/4, time.Hour), 7*24*time.Hour).Milliseconds(), 10)
	case t.Retention < 0:
		want["retention.ms"] = "-1"
	}
	if policy == "compact" {
		// A tombstone removes an identifier only once the cleaner has
		// compacted its segment, which on a quiet topic may be never:
		// compact within a day (tombstones then stay delete.retention.ms,
		// a day by default).
		want["max.compaction.lag.ms"] = strconv.FormatInt((24 * time.Hour).Milliseconds(), 10)
	}
	if t.MinInsyncReplicas > 0 {
		want["min.insync.replicas"] = strconv.Itoa(t.MinInsyncReplicas)
	}
	return want
}

// EnsureTopics creates the topics that are missing, owned (those the service
// writes) and used (those it only reads) alike, and checks the owned ones.
// Config drift it can fix (cleanup policy, retention, min ISR) is altered in
// place and logged; a partition count or replication factor that differs
// from the spec is an error, because changing either would remap keys or
// needs a reassignment an operator must plan. A used topic is its writer's
// to check, so two services whose specs differ do not undo each other at
// every start. It returns once every topic is visible in metadata, so
// clients can use them at once.
func EnsureTopics(ctx context.Context, cl *kgo.Client, owned, used []TopicSpec, log *slog.Logger) error {
	adm := kadm.NewClient(cl)
	isOwned := map[string]bool{}
	for _, s := range owned {
		isOwned[s.Name] = true
	}
	specs := append(slices.Clone(owned), used...)
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	metas, err := describeTopics(ctx, cl, names)
	if err != nil {
		return err
	}
	created := map[string]bool{}
	for _, spec := range specs {
		if metas[spec.Name].exists {
			continue
		}
		ok, err := createTopic(ctx, adm, spec, log)
		if err != nil {
			return err
		}
		created[spec.Name] = ok
	}
	// Creation returns before every broker knows the topic.
	for len(created) > 0 && !allExist(metas, names) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for topics %v in metadata: %w", names, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if metas, err = describeTopics(ctx, cl, names); err != nil {
			return err
		}
	}
	var errs []error
	for _, spec := range specs {
		if isOwned[spec.Name] && !created[spec.Name] {
			errs = append(errs, checkTopic(ctx, adm, spec, metas[spec.Name], log))
		}
	}
	return errors.Join(errs...)
}

type topicMeta struct {
	exists     bool
	partitions int
	replicas   int
}

// describeTopics asks a broker directly rather than through kadm, whose
// metadata cache can say for seconds that a just-created topic is missing.
func describeTopics(ctx context.Context, cl *kgo.Client, names []string) (map[string]topicMeta, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, n := range names {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("topic metadata: %w", err)
	}
	metas := make(map[string]topicMeta, len(names))
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		err := kerr.ErrorForCode(t.ErrorCode)
		switch {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			continue
		case err != nil:
			return nil, fmt.Errorf("topic %s metadata: %w", *t.Topic, err)
		}
		m := topicMeta{exists: len(t.Partitions) > 0, partitions: len(t.Partitions)}
		if len(t.Partitions) > 0 {
			m.replicas = len(t.Partitions[0].Replicas)
		}
		metas[*t.Topic] = m
	}
	return metas, nil
}

func allExist(metas map[string]topicMeta, names []string) bool {
	for _, n := range names {
		if !metas[n].exists {
			return false
		}
	}
	return true
}

// createTopic reports whether it created the topic; false with no error means
// another instance created it first, so the caller checks it like any other.
func createTopic(ctx context.Context, adm *kadm.Client, spec TopicSpec, log *slog.Logger) (bool, error) {
	configs := map[string]*string{}
	for k, v := range spec.wantConfigs() {
		configs[k] = &v
	}
	resp, err := adm.CreateTopic(ctx, spec.partitions(), spec.replicationFactor(), configs, spec.Name)
	if err == nil {
		err = resp.Err
	}
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create topic %s: %w", spec.Name, err)
	}
	log.Info("created topic", "topic", spec.Name, "partitions", spec.partitions(), "replication_factor", spec.replicationFactor())
	return true, nil
}

func checkTopic(ctx context.Context, adm *kadm.Client, spec TopicSpec, m topicMeta, log *slog.Logger) error {
	if got := int32(m.partitions); got != spec.partitions() {
		return fmt.Errorf("topic %s has %d partitions, config wants %d: change the config or repartition the topic by hand", spec.Name, got, spec.partitions())
	}
	if got := int16(m.replicas); got != spec.replicationFactor() {
		return fmt.Errorf("topic %s has replication factor %d, config wants %d: reassign replicas by hand or change the config", spec.Name, got, spec.replicationFactor())
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, spec.Name)
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", spec.Name, err)
	}
	rc, err := rcs.On(spec.Name, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", spec.Name, err)
	}
	have := map[string]string{}
	for _, c := range rc.Configs {
		have[c.Key] = c.MaybeValue()
	}
	var alters []kadm.AlterConfig
	for k, v := range spec.wantConfigs() {
		if have[k] != v {
			alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
			log.Warn("topic config differs from spec; altering", "topic", spec.Name, "key", k, "have", have[k], "want", v)
		}
	}
	if len(alters) == 0 {
		return nil
	}
	resps, err := adm.AlterTopicConfigs(ctx, alters, spec.Name)
	if err == nil {
		var r kadm.AlterConfigsResponse
		r, err = resps.On(spec.Name, nil)
		if err == nil {
			err = r.Err
		}
	}
	if err != nil {
		return fmt.Errorf("alter topic %s config: %w", spec.Name, err)
	}
	return nil
}
