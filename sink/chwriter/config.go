package chwriter

import (
	"errors"
	"time"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/kafkax"
)

// Config is the sink's whole configuration (configs/sink.yaml).
type Config struct {
	// Region names the destination this sink loads (a region or an export
	// destination).
	Region string        `mapstructure:"region"`
	Log    config.Log    `mapstructure:"log"`
	Admin  config.Admin  `mapstructure:"admin"`
	Kafka  kafkax.Config `mapstructure:"kafka"`
	// GroupID is the consumer group, one per destination.
	GroupID    string     `mapstructure:"group_id"`
	Topics     Topics     `mapstructure:"topics"`
	ClickHouse chx.Config `mapstructure:"clickhouse"`
	// Database is the destination's database (analytics_<region>); created
	// if missing.
	Database string `mapstructure:"database"`
	// Cluster names the ClickHouse cluster (the servers' remote_servers)
	// whose replicas hold the database: the sink then creates replicated
	// tables on every replica and verifies on each (cluster.go). List every
	// replica in clickhouse.addr. Empty means one server.
	Cluster   string    `mapstructure:"cluster"`
	Batch     Batch     `mapstructure:"batch"`
	Retention Retention `mapstructure:"retention"`
	Erasure   Erasure   `mapstructure:"erasure"`
	Audit     Audit     `mapstructure:"audit"`

	// DevMode lets the service run with the secrets shipped in the
	// repository (demo write keys, development keys and token), which
	// config.Load otherwise refuses: for `make run`, the tests and the
	// compose stack only. False by default.
	DevMode bool `mapstructure:"dev_mode"`
}

// Erasure says how the sink carries out the erasure notices of its
// destination: notices are gathered for Window (or until MaxSubjects
// arrived) and deleted by one mutation, never one per subject.
type Erasure struct {
	// Window is how long notices gather before their mutation. Longer
	// means fewer mutations and slower deletion.
	Window time.Duration `mapstructure:"window"`
	// MaxSubjects ends a window early once this many notices arrived.
	MaxSubjects int `mapstructure:"max_subjects"`
	// Timeout bounds the wait for one mutation to finish; past it the
	// deletion is retried.
	Timeout time.Duration `mapstructure:"timeout"`
	// GroupID is the consumer group that shares the deletion work of
	// several sink instances. Empty means <group_id>-erasures.
	GroupID string `mapstructure:"group_id"`
}

// Audit loads privacy.receipts into <database>.privacy_audit, the table
// the privacy office queries. Enable it on one sink per region, the home
// region's; never on an export destination's, which would copy in-region
// receipts abroad. Off by default.
type Audit struct {
	Enabled bool `mapstructure:"enabled"`
	// GroupID is the audit loader's consumer group. Empty means
	// <group_id>-audit.
	GroupID string `mapstructure:"group_id"`
}

// Topics the sink reads and writes.
type Topics struct {
	Clean kafkax.TopicSpec `mapstructure:"clean"`
	// DLQ receives the dead letters of what this sink could not load or
	// act on (clean records, erasure notices, receipts): pointers to the
	// records, never copies (kafkax.DeadLetter). One per destination
	// (events.dlq.<region or destination>), so each destination's
	// operators see their own; kept a day, a record's pointer being of use
	// only while its record is retained.
	DLQ kafkax.TopicSpec `mapstructure:"dlq"`
	// Erasures are the erasure notices for this destination
	// (privacy.erasures.<region or destination>), written by the enricher.
	Erasures kafkax.TopicSpec `mapstructure:"erasures"`
	// Receipts (privacy.receipts) is where the sink records each verified
	// deletion, and what the audit loads.
	Receipts kafkax.TopicSpec `mapstructure:"receipts"`
}

// Batch says when a batch is inserted: at MaxRows rows, at MaxBytes of
// record values, or MaxWait after its first record, whichever comes first.
type Batch struct {
	MaxRows int `mapstructure:"max_rows"`
	// MaxBytes bounds the memory a batch holds, counted as the size of its
	// records' values.
	MaxBytes int64         `mapstructure:"max_bytes"`
	MaxWait  time.Duration `mapstructure:"max_wait"`
}

// Default returns the config with every default filled in.
func Default() Config {
	return Config{
		Region:     "cn",
		Admin:      config.Admin{Listen: ":9103"},
		Kafka:      kafkax.Config{Brokers: []string{"127.0.0.1:9092"}, ClientID: "sink"},
		GroupID:    "sink-cn",
		ClickHouse: chx.Config{Addr: []string{"127.0.0.1:9000"}},
		Database:   "analytics_cn",
		Topics: Topics{
			Clean: kafkax.TopicSpec{Name: "events.clean.cn", Retention: 7 * 24 * time.Hour},
			DLQ:   kafkax.TopicSpec{Name: "events.dlq.cn", Partitions: 1, Retention: 24 * time.Hour},
			// Kept forever: a restored backup is cleaned by replaying it.
			Erasures: kafkax.TopicSpec{Name: "privacy.erasures.cn", Retention: -1},
			Receipts: kafkax.TopicSpec{Name: "privacy.receipts", CleanupPolicy: "compact"},
		},
		Erasure: Erasure{Window: 2 * time.Second, MaxSubjects: 1000, Timeout: 5 * time.Minute},
		// Off unless asked (configs/sink.yaml): an export destination's
		// sink must not copy in-region receipts abroad.
		Batch:     Batch{MaxRows: 50000, MaxBytes: 64 << 20, MaxWait: time.Second},
		Retention: Retention{Months: 13, Interval: time.Hour},
	}
}

// Resolve reads the Kafka and ClickHouse password files and checks the
// TLS files (config.Resolver).
func (c *Config) Resolve() error {
	return errors.Join(c.Kafka.Resolve("kafka"), c.ClickHouse.Resolve("clickhouse"))
}

// Validate checks every key of the resolved config.
func (c *Config) Validate() error {
	errs := []error{
		c.Log.Validate("log"),
		c.Admin.Validate("admin"),
		c.Kafka.Validate("kafka"),
		c.Topics.validate(),
		c.ClickHouse.Validate("clickhouse"),
		chx.ValidateIdentifier("database", c.Database),
	}
	if c.Cluster != "" {
		errs = append(errs, chx.ValidateIdentifier("cluster", c.Cluster))
	}
	if c.Region == "" {
		errs = append(errs, config.Invalid("region", "is required"))
	}
	if c.GroupID == "" {
		errs = append(errs, config.Invalid("group_id", "is required"))
	}
	if c.Batch.MaxRows <= 0 {
		errs = append(errs, config.Invalid("batch.max_rows", "must be positive"))
	}
	if c.Retention.Months < 0 || c.Retention.Months > 1200 {
		errs = append(errs, config.Invalid("retention.months", "must be between 0 (keep everything) and 1200, got %d", c.Retention.Months))
	}
	if c.Retention.Interval < 0 {
		errs = append(errs, config.Invalid("retention.interval", "must not be negative"))
	}
	if c.Batch.MaxBytes <= 0 {
		errs = append(errs, config.Invalid("batch.max_bytes", "must be positive"))
	}
	if c.Batch.MaxWait <= 0 {
		errs = append(errs, config.Invalid("batch.max_wait", "must be a positive duration such as 1s"))
	}
	if c.Erasure.Window <= 0 {
		errs = append(errs, config.Invalid("erasure.window", "must be a positive duration such as 2s"))
	}
	if c.Erasure.MaxSubjects <= 0 || c.Erasure.MaxSubjects > maxSubjectsPerMutation {
		errs = append(errs, config.Invalid("erasure.max_subjects", "must be between 1 and %d, got %d", maxSubjectsPerMutation, c.Erasure.MaxSubjects))
	}
	if c.Erasure.Timeout <= 0 {
		errs = append(errs, config.Invalid("erasure.timeout", "must be a positive duration such as 5m"))
	}
	return errors.Join(errs...)
}

// validate checks each topic as the kind it is.
func (t Topics) validate() error {
	return errors.Join(
		kafkax.Plain.Validate("topics.clean", t.Clean),
		kafkax.Plain.Validate("topics.dlq", t.DLQ),
		kafkax.KeptForever.Validate("topics.erasures", t.Erasures),
		kafkax.Compacted.Validate("topics.receipts", t.Receipts),
	)
}

// erasureGroup and auditGroup are the consumer groups of the erasure
// worker and the audit loader.
func (c *Config) erasureGroup() string { return or(c.Erasure.GroupID, c.GroupID+"-erasures") }
func (c *Config) auditGroup() string   { return or(c.Audit.GroupID, c.GroupID+"-audit") }

func or(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}
