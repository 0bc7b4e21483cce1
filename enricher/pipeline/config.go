package pipeline

import (
	"errors"
	"os"
	"time"

	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/policy"
)

// Config is the enricher's whole configuration (configs/enricher.yaml).
type Config struct {
	// Region is the home region whose raw topic this enricher reads.
	Region string        `mapstructure:"region"`
	Log    config.Log    `mapstructure:"log"`
	Admin  config.Admin  `mapstructure:"admin"`
	Kafka  kafkax.Config `mapstructure:"kafka"`
	// GroupID is the consumer group; instances with the same id share the
	// raw topic's partitions.
	GroupID string `mapstructure:"group_id"`
	Topics  Topics `mapstructure:"topics"`
	// Pseudonym is the in-region pseudonymization key.
	Pseudonym Pseudonym `mapstructure:"pseudonym"`
	// MaxPollRecords bounds one processing batch, and so one transaction.
	// Zero means 1000.
	MaxPollRecords int `mapstructure:"max_poll_records"`
	// TransactionalID names this instance's transactions. It must be unique
	// per instance and the same across its restarts, so that a restarted
	// instance fences what its previous run left unfinished. Empty means
	// <group_id>-<hostname>, which suits one instance per host or pod.
	TransactionalID string `mapstructure:"transactional_id"`
	// TransactionTimeout bounds producing and committing one batch.
	TransactionTimeout time.Duration `mapstructure:"transaction_timeout"`
	// DedupWindow is how long an event's source and messageId are
	// remembered to drop client retries. Zero turns de-duplication off.
	DedupWindow time.Duration `mapstructure:"dedup_window"`
	// DedupMaxEntries bounds the events remembered (about 100 bytes each).
	DedupMaxEntries int `mapstructure:"dedup_max_entries"`
}

// Topics the enricher reads and writes.
type Topics struct {
	Raw   kafkax.TopicSpec `mapstructure:"raw"`
	Clean kafkax.TopicSpec `mapstructure:"clean"`
	// DLQ receives raw records the enricher cannot read. They hold raw PI,
	// so the topic is per region and keeps them no longer than the raw
	// topic does: it is not the sink's dead-letter topic.
	DLQ kafkax.TopicSpec `mapstructure:"dlq"`
}

// Pseudonym is an HMAC key and its id. The id is written into every
// pseudonym, so a rotated key's pseudonyms stay recognisable.
type Pseudonym struct {
	KeyID string `mapstructure:"key_id"`
	// Key is at least 32 bytes (for example `openssl rand -hex 32`). Give it
	// by environment (ENRICHER_PSEUDONYM_KEY) or KeyFile, never in the file.
	Key     config.Secret `mapstructure:"key"`
	KeyFile string        `mapstructure:"key_file"`
}

// Default returns the config with every default filled in.
func Default() Config {
	return Config{
		Region:  "cn",
		Admin:   config.Admin{Listen: ":9102"},
		Kafka:   kafkax.Config{Brokers: []string{"127.0.0.1:9092"}, ClientID: "enricher"},
		GroupID: "enricher-cn",
		Topics: Topics{
			Raw:   kafkax.TopicSpec{Name: "events.raw.cn", Retention: 6 * time.Hour},
			Clean: kafkax.TopicSpec{Name: "events.clean.cn", Retention: 7 * 24 * time.Hour},
			DLQ:   kafkax.TopicSpec{Name: "events.dlq.raw.cn", Partitions: 1, Retention: 6 * time.Hour},
		},
		MaxPollRecords:     1000,
		TransactionTimeout: 30 * time.Second,
		DedupWindow:        10 * time.Minute,
		DedupMaxEntries:    500000,
	}
}

// Validate checks every key and resolves the key file.
func (c *Config) Validate() error {
	errs := []error{
		c.Log.Validate("log"),
		c.Admin.Validate("admin"),
		c.Kafka.Validate("kafka"),
		c.Topics.Raw.Validate("topics.raw"),
		c.Topics.Clean.Validate("topics.clean"),
		c.Topics.DLQ.Validate("topics.dlq"),
	}
	if c.Region == "" {
		errs = append(errs, config.Invalid("region", "is required"))
	}
	if c.GroupID == "" {
		errs = append(errs, config.Invalid("group_id", "is required"))
	}
	if c.MaxPollRecords < 0 {
		errs = append(errs, config.Invalid("max_poll_records", "must not be negative"))
	}
	if c.DedupWindow < 0 || c.DedupMaxEntries < 0 {
		errs = append(errs, config.Invalid("dedup_window", "dedup_window and dedup_max_entries must not be negative"))
	}
	if c.TransactionTimeout < time.Second {
		errs = append(errs, config.Invalid("transaction_timeout", "must be at least 1s, got %v", c.TransactionTimeout))
	}
	if c.TransactionalID == "" {
		host, err := os.Hostname()
		if err != nil {
			errs = append(errs, config.Invalid("transactional_id", "is empty and the hostname is unknown (%v): set it", err))
		}
		c.TransactionalID = c.GroupID + "-" + host
	}
	key, err := config.ResolveSecret("pseudonym.key", c.Pseudonym.Key, c.Pseudonym.KeyFile)
	c.Pseudonym.Key = key
	if err == nil {
		if _, perr := policy.NewPseudonymizer(c.Pseudonym.KeyID, []byte(key.Reveal())); perr != nil {
			err = config.Invalid("pseudonym", "%v (set pseudonym.key_id, and pseudonym.key by ENRICHER_PSEUDONYM_KEY or pseudonym.key_file)", perr)
		}
	}
	errs = append(errs, err)
	return errors.Join(errs...)
}
