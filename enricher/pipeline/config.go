package pipeline

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/consentflow/consentflow/internal/catalogue"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/keyring"
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
	// Catalogue is the event catalogue the profiles follow.
	Catalogue Catalogue `mapstructure:"catalogue"`
	// Profiles are the de-identification profiles by name.
	Profiles map[string]policy.Settings `mapstructure:"profiles"`
	// CleanProfile names the profile of events.clean.<region>.
	CleanProfile string `mapstructure:"clean_profile"`
	// Export is the cross-border destination; an empty name turns it off.
	Export Export `mapstructure:"export"`
	// Consent is how consent is kept and judged.
	Consent Consent `mapstructure:"consent"`
	// MaxPollRecords bounds one processing batch, and so one transaction.
	// Zero means 10000 (defaultMaxPollRecords). Each transaction costs the broker and the enricher
	// about the same whatever its size (offsets, markers, the consent
	// sync), so bigger batches cost less per event; a batch is held in
	// memory (a few KiB per event) and read again after an abort.
	MaxPollRecords int `mapstructure:"max_poll_records"`
	// TransactionalID names this instance's transactions. It must be unique
	// per instance and the same across its restarts, so that a restarted
	// instance fences what its previous run left unfinished. Empty means
	// <group_id>-<hostname> (set by Resolve), which suits one instance per
	// host or pod.
	TransactionalID string `mapstructure:"transactional_id"`
	// TransactionTimeout bounds producing and committing one batch.
	TransactionTimeout time.Duration `mapstructure:"transaction_timeout"`
	// DedupWindow is how long an event's source and messageId are
	// remembered to drop client retries. Zero turns de-duplication off.
	DedupWindow time.Duration `mapstructure:"dedup_window"`
	// DedupMaxEntries bounds the events remembered (about 85 bytes each).
	DedupMaxEntries int `mapstructure:"dedup_max_entries"`
	// UserAgentParsesPerSecond bounds the user agents parsed (not found in
	// the cache) per second, in bursts of ten seconds' worth: each costs
	// 1-5 ms of CPU, and a client may make every one unique. The others
	// generalize to device class other (counted). Zero: no bound.
	UserAgentParsesPerSecond int `mapstructure:"user_agent_parses_per_second"`

	// DevMode lets the service run with the secrets shipped in the
	// repository (demo write keys, development keys and token), which
	// config.Load otherwise refuses: for `make run`, the tests and the
	// compose stack only. False by default.
	DevMode bool `mapstructure:"dev_mode"`
}

// Topics the enricher reads and writes.
type Topics struct {
	Raw   kafkax.TopicSpec `mapstructure:"raw"`
	Clean kafkax.TopicSpec `mapstructure:"clean"`
	// DLQ receives the dead letters of raw records the enricher cannot
	// read or the cross-border gate refused: pointers to them in the raw
	// topic, never copies (kafkax.DeadLetter). Per region, like the
	// records they point at, and kept as long as those are (the raw
	// topic's retention); not the sinks' dead-letter topics.
	DLQ kafkax.TopicSpec `mapstructure:"dlq"`
	// Consent is the collector's compacted topic of consent states.
	Consent kafkax.TopicSpec `mapstructure:"consent"`
	// Erasures is the suppression list, keyed by pseudonyms: a subject
	// once in it is dropped.
	Erasures kafkax.TopicSpec `mapstructure:"erasures"`
	// ErasureRequests are the collector's erasures by raw identifier, which
	// the erasure notifier passes on as each destination's pseudonyms (and
	// where it records the erasure of a device linked late to an erased
	// user). Deleted after its retention.
	ErasureRequests kafkax.TopicSpec `mapstructure:"erasure_requests"`
	// Identities links anonymousIds to userIds (from identify and alias),
	// so an erasure follows a person across devices.
	Identities kafkax.TopicSpec `mapstructure:"identities"`
	// ErasureNotices tells this region's sinks which pseudonyms to delete
	// (privacy.erasures.<region>).
	ErasureNotices kafkax.TopicSpec `mapstructure:"erasure_notices"`
	// Receipts is where the enricher records each erasure it passed on.
	Receipts kafkax.TopicSpec `mapstructure:"receipts"`
}

// Export is the destination abroad that events with cross_border consent
// also go to, de-identified by its own (stricter) profile under its own key.
type Export struct {
	// Name is the destination (intl); empty means no export.
	Name    string           `mapstructure:"name"`
	Profile string           `mapstructure:"profile"`
	Topic   kafkax.TopicSpec `mapstructure:"topic"`
	// Pseudonym must differ from the in-region key, so exported data
	// cannot be joined with in-region data.
	Pseudonym Pseudonym `mapstructure:"pseudonym"`
	// ErasureNotices tells the destination's sinks which pseudonyms (under
	// the export key) to delete (privacy.erasures.<name>).
	ErasureNotices kafkax.TopicSpec `mapstructure:"erasure_notices"`
}

// Catalogue locates the event catalogue.
type Catalogue struct {
	// File is the catalogue's path (README, "Event catalogue"), relative
	// to the config file's folder unless absolute. Empty declares nothing:
	// in region every property is undeclared, and abroad no property and
	// no event name is kept.
	File string `mapstructure:"file"`
}

// Load reads and checks the catalogue; nil when none is configured.
func (c Catalogue) Load() (*catalogue.Catalogue, error) {
	if c.File == "" {
		return nil, nil
	}
	cat, err := catalogue.Load(c.File)
	if err != nil {
		return nil, err
	}
	if err := policy.CheckContextDeclarations(cat); err != nil {
		return nil, err
	}
	return cat, nil
}

// RelativeTo resolves the catalogue's path from the config file's folder.
func (c *Config) RelativeTo(dir string) {
	if c.Catalogue.File != "" && !filepath.IsAbs(c.Catalogue.File) {
		c.Catalogue.File = filepath.Join(dir, c.Catalogue.File)
	}
}

// Consent configures the consent store and rules.
type Consent struct {
	// History is how many changes of a subject's consent are remembered,
	// to judge late events by the consent of their time. At least 2.
	History int `mapstructure:"history"`
	// SyncTimeout bounds the wait, before each batch, for the consent
	// store to apply what the consent topics hold; past it the batch is
	// retried.
	SyncTimeout time.Duration `mapstructure:"sync_timeout"`
	// Defaults grants purposes to a source's events when the subject's
	// consent is unknown (a first-party server with a legal basis). Empty:
	// fail closed for every source.
	Defaults map[string][]string `mapstructure:"defaults"`
	// Categories maps consent categories carried in events
	// (context.consent.categoryPreferences; matched without case) to
	// purposes. Categories not listed are ignored. Unset means
	// defaultCategories; set, it replaces them whole.
	Categories map[string][]string `mapstructure:"categories"`
}

// defaultCategories map the category names common consent managers send.
var defaultCategories = map[string][]string{"analytics": {"analytics"}, "personalization": {"personalization"},
	"functional": {"personalization"}, "marketing": {"marketing"}, "advertising": {"marketing"}}

// Pseudonym is a pseudonymization key and the one scheduled to replace it.
type Pseudonym = keyring.Config

// NextKey is a scheduled key rotation.
type NextKey = keyring.NextKey

// defaultMaxPollRecords is max_poll_records when unset or zero.
const defaultMaxPollRecords = 10000

// Default returns the config with every default filled in.
func Default() Config {
	return Config{
		Region:  "cn",
		Admin:   config.Admin{Listen: ":9102"},
		Kafka:   kafkax.Config{Brokers: []string{"127.0.0.1:9092"}, ClientID: "enricher"},
		GroupID: "enricher-cn",
		Topics: Topics{
			Raw:             kafkax.TopicSpec{Name: "events.raw.cn", Retention: 6 * time.Hour},
			Clean:           kafkax.TopicSpec{Name: "events.clean.cn", Retention: 7 * 24 * time.Hour},
			DLQ:             kafkax.TopicSpec{Name: "events.dlq.raw.cn", Partitions: 1, Retention: 6 * time.Hour},
			Consent:         kafkax.TopicSpec{Name: "privacy.consent", CleanupPolicy: "compact"},
			Erasures:        kafkax.TopicSpec{Name: "privacy.erasures", CleanupPolicy: "compact"},
			ErasureRequests: kafkax.TopicSpec{Name: "privacy.erasure-requests", Retention: 7 * 24 * time.Hour},
			Identities:      kafkax.TopicSpec{Name: "privacy.identities", CleanupPolicy: "compact"},
			ErasureNotices:  kafkax.TopicSpec{Name: "privacy.erasures.cn", Retention: -1},
			Receipts:        kafkax.TopicSpec{Name: "privacy.receipts", CleanupPolicy: "compact"},
		},
		Profiles: map[string]policy.Settings{
			"in_region": {IP: "truncate", DeviceIDs: true, UserAgent: "parse", Detail: "full", Undeclared: policy.UndeclaredScrub},
			"export":    {IP: "drop", DeviceIDs: false, UserAgent: "parse", Detail: "coarse", Undeclared: policy.UndeclaredDrop},
		},
		CleanProfile: "in_region",
		Export: Export{Name: "intl", Profile: "export", Pseudonym: Pseudonym{KeyID: "x1"},
			Topic:          kafkax.TopicSpec{Name: "events.export.intl", Retention: 7 * 24 * time.Hour},
			ErasureNotices: kafkax.TopicSpec{Name: "privacy.erasures.intl", Retention: -1}},
		Consent:                  Consent{History: 16, SyncTimeout: 10 * time.Second},
		MaxPollRecords:           defaultMaxPollRecords,
		TransactionTimeout:       30 * time.Second,
		DedupWindow:              10 * time.Minute,
		DedupMaxEntries:          500000,
		UserAgentParsesPerSecond: 200,
	}
}

// Resolve reads the key files and the Kafka password file, checks the TLS
// files and the catalogue, and fills in max_poll_records and
// transactional_id when they are zero (config.Resolver).
func (c *Config) Resolve() error {
	errs := []error{c.Kafka.Resolve("kafka"), c.Pseudonym.Resolve("pseudonym")}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = defaultMaxPollRecords
	}
	if c.TransactionalID == "" {
		host, err := os.Hostname()
		if err != nil {
			errs = append(errs, config.Invalid("transactional_id", "is empty and the hostname is unknown (%v): set it", err))
		} else {
			c.TransactionalID = c.GroupID + "-" + host
		}
	}
	if _, err := c.Catalogue.Load(); err != nil {
		errs = append(errs, config.Invalid("catalogue.file", "%v", err))
	}
	if c.Export.Name != "" {
		errs = append(errs, c.Export.Pseudonym.Resolve("export.pseudonym"))
	}
	return errors.Join(errs...)
}

// Validate checks every key of the resolved config.
func (c *Config) Validate() error {
	errs := []error{
		c.Log.Validate("log"),
		c.Admin.Validate("admin"),
		c.Kafka.Validate("kafka"),
		c.validateTopics(),
		c.validateBatches(),
		c.Pseudonym.Validate("pseudonym", "ENRICHER_PSEUDONYM_KEY"),
		c.validateProfiles(),
		c.validateConsent(),
		c.validateExport(),
	}
	if c.Region == "" {
		errs = append(errs, config.Invalid("region", "is required"))
	}
	if c.GroupID == "" {
		errs = append(errs, config.Invalid("group_id", "is required"))
	}
	if c.UserAgentParsesPerSecond < 0 {
		errs = append(errs, config.Invalid("user_agent_parses_per_second", "must not be negative (0: no bound), got %d", c.UserAgentParsesPerSecond))
	}
	if c.DedupWindow < 0 || c.DedupMaxEntries < 0 {
		errs = append(errs, config.Invalid("dedup_window", "dedup_window and dedup_max_entries must not be negative"))
	}
	return errors.Join(errs...)
}

// validateTopics checks each topic as the kind it is.
func (c *Config) validateTopics() error {
	t := c.Topics
	errs := []error{
		kafkax.Transient.Validate("topics.raw", t.Raw),
		kafkax.Plain.Validate("topics.clean", t.Clean),
		kafkax.Plain.Validate("topics.dlq", t.DLQ),
		kafkax.Compacted.Validate("topics.consent", t.Consent),
		kafkax.Compacted.Validate("topics.erasures", t.Erasures),
		kafkax.Compacted.Validate("topics.identities", t.Identities),
		kafkax.Compacted.Validate("topics.receipts", t.Receipts),
		kafkax.Transient.Validate("topics.erasure_requests", t.ErasureRequests),
		kafkax.KeptForever.Validate("topics.erasure_notices", t.ErasureNotices),
	}
	if c.Export.Name != "" {
		errs = append(errs, kafkax.Plain.Validate("export.topic", c.Export.Topic),
			kafkax.KeptForever.Validate("export.erasure_notices", c.Export.ErasureNotices))
	}
	return errors.Join(errs...)
}

// validateBatches checks what bounds a batch and its transaction.
func (c *Config) validateBatches() error {
	var errs []error
	if c.MaxPollRecords <= 0 {
		errs = append(errs, config.Invalid("max_poll_records", "must be positive (zero in the file means %d), got %d", defaultMaxPollRecords, c.MaxPollRecords))
	}
	if c.TransactionalID == "" {
		errs = append(errs, config.Invalid("transactional_id", "is required (empty in the file means <group_id>-<hostname>)"))
	}
	if c.TransactionTimeout < time.Second {
		errs = append(errs, config.Invalid("transaction_timeout", "must be at least 1s, got %v", c.TransactionTimeout))
	}
	return errors.Join(errs...)
}

// validateExport checks the export destination's keyring, whose keys must
// all differ from the in-region ones.
func (c *Config) validateExport() error {
	if c.Export.Name == "" {
		return nil
	}
	errs := []error{c.Export.Pseudonym.Validate("export.pseudonym", "ENRICHER_EXPORT_PSEUDONYM_KEY")}
	inRegion := slices.Collect(maps.Values(c.Pseudonym.Secrets("pseudonym")))
	export := c.Export.Pseudonym.Secrets("export.pseudonym")
	for _, key := range slices.Sorted(maps.Keys(export)) {
		if slices.Contains(inRegion, export[key]) {
			errs = append(errs, config.Invalid(key, "must differ from the in-region keys (pseudonym, its next and retired keys), or exported data could be joined with in-region data"))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) validateProfiles() error {
	var errs []error
	for name, s := range c.Profiles {
		if err := s.Validate(); err != nil {
			errs = append(errs, config.Invalid("profiles."+name, "%v", err))
		}
	}
	clean, ok := c.Profiles[c.CleanProfile]
	if !ok {
		errs = append(errs, config.Invalid("clean_profile", "%q is not among profiles", c.CleanProfile))
	}
	if c.Export.Name == "" {
		return errors.Join(errs...)
	}
	export, ok := c.Profiles[c.Export.Profile]
	switch {
	case !ok:
		errs = append(errs, config.Invalid("export.profile", "%q is not among profiles", c.Export.Profile))
	case c.Export.Profile == c.CleanProfile:
		errs = append(errs, config.Invalid("export.profile", "must be a stricter profile than clean_profile %q", c.CleanProfile))
	default:
		if err := export.StricterThan(clean); err != nil {
			errs = append(errs, config.Invalid("profiles."+c.Export.Profile, "export profile is not stricter than %q: %v", c.CleanProfile, err))
		}
		if export.DeviceIDs {
			errs = append(errs, config.Invalid("profiles."+c.Export.Profile+".device_ids", "must be false: no device-level identifier leaves the region"))
		}
		if export.Undeclared == policy.UndeclaredScrub {
			errs = append(errs, config.Invalid("profiles."+c.Export.Profile+".undeclared", "must be drop: only declared public fields leave the region"))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) validateConsent() error {
	var errs []error
	if c.Consent.History < 2 {
		// A single change could be consent carried in an event, with the
		// full record beneath it (and its minor flag) pushed out.
		errs = append(errs, config.Invalid("consent.history", "must be at least 2, got %d", c.Consent.History))
	}
	if c.Consent.SyncTimeout < 100*time.Millisecond || c.Consent.SyncTimeout > c.TransactionTimeout/2 {
		// The wait comes out of the batch's transaction_timeout.
		errs = append(errs, config.Invalid("consent.sync_timeout", "must be between 100ms and half of transaction_timeout (%v), got %v",
			c.TransactionTimeout/2, c.Consent.SyncTimeout))
	}
	for _, m := range []struct {
		key string
		m   map[string][]string
	}{{"consent.defaults", c.Consent.Defaults}, {"consent.categories", c.Consent.Categories}} {
		for name, purposes := range m.m {
			if _, err := policy.ParsePurposes(purposes); err != nil {
				errs = append(errs, config.Invalid(m.key+"."+name, "%v", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Rules are the consent rules the config describes.
func (c Consent) Rules() policy.Rules {
	r := policy.Rules{Defaults: map[string]policy.Purposes{}, Categories: policy.CategoryMap{}}
	for source, names := range c.Defaults {
		r.Defaults[source], _ = policy.ParsePurposes(names) // validated
	}
	categories := c.Categories
	if categories == nil {
		// Not in Default: viper would merge a file's map into the default
		// one instead of replacing it.
		categories = defaultCategories
	}
	for category, names := range categories {
		r.Categories[strings.ToLower(category)], _ = policy.ParsePurposes(names)
	}
	return r
}
