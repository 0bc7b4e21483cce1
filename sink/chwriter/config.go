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
	Database  string    `mapstructure:"database"`
	Batch     Batch     `mapstructure:"batch"`
	Retention Retention `mapstructure:"retention"`
}

// Topics the sink reads and writes.
type Topics struct {
	Clean kafkax.TopicSpec `mapstructure:"clean"`
	DLQ   kafkax.TopicSpec `mapstructure:"dlq"`
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
			DLQ:   kafkax.TopicSpec{Name: "events.dlq", Partitions: 1, Retention: 14 * 24 * time.Hour},
		},
		Batch:     Batch{MaxRows: 50000, MaxBytes: 64 << 20, MaxWait: time.Second},
		Retention: Retention{Months: 13, Interval: time.Hour},
	}
}

// Validate checks every key and resolves the password file.
func (c *Config) Validate() error {
	errs := []error{
		c.Log.Validate("log"),
		c.Admin.Validate("admin"),
		c.Kafka.Validate("kafka"),
		c.Topics.Clean.Validate("topics.clean"),
		c.Topics.DLQ.Validate("topics.dlq"),
		c.ClickHouse.Validate("clickhouse"),
		chx.ValidateIdentifier("database", c.Database),
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
	return errors.Join(errs...)
}
