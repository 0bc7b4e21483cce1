package ingest

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/kafkax"
)

// Config is the collector's whole configuration (configs/collector.yaml).
type Config struct {
	// Region is the home region of every event this deployment receives.
	Region string        `mapstructure:"region"`
	Log    config.Log    `mapstructure:"log"`
	Admin  config.Admin  `mapstructure:"admin"`
	HTTP   HTTP          `mapstructure:"http"`
	Kafka  kafkax.Config `mapstructure:"kafka"`
	Topics Topics        `mapstructure:"topics"`
	// Sources are the write keys the collector accepts.
	Sources []Source `mapstructure:"sources"`
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed. Empty
	// means none: the client IP is the TCP peer.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
}

// HTTP configures the public ingest server.
type HTTP struct {
	// Listen is host:port.
	Listen            string        `mapstructure:"listen"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	// MaxRequestBytes bounds a request body after decompression.
	MaxRequestBytes int64 `mapstructure:"max_request_bytes"`
	// MaxEventBytes bounds one event of a batch.
	MaxEventBytes int `mapstructure:"max_event_bytes"`
	// ProduceTimeout is how long a request waits for Kafka to acknowledge
	// its events before answering 503. At least 1s.
	ProduceTimeout time.Duration `mapstructure:"produce_timeout"`
}

// Topics the collector writes.
type Topics struct {
	Raw kafkax.TopicSpec `mapstructure:"raw"`
}

// Source is one sending application and its write key.
type Source struct {
	// Name identifies the source in events (sourceId) and metrics.
	Name string `mapstructure:"name"`
	// WriteKey is the key SDKs send as the HTTP Basic username. Prefer
	// WriteKeyFile outside development.
	WriteKey     config.Secret `mapstructure:"write_key"`
	WriteKeyFile string        `mapstructure:"write_key_file"`
	// Disabled sources are refused with 403 while their key stays known.
	Disabled bool `mapstructure:"disabled"`
}

// Default returns the config with every default filled in.
func Default() Config {
	return Config{
		Region: "cn",
		Admin:  config.Admin{Listen: ":9101"},
		HTTP: HTTP{
			Listen:            ":8080",
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxRequestBytes:   500 << 10,
			MaxEventBytes:     32 << 10,
			ProduceTimeout:    5 * time.Second,
		},
		Kafka:  kafkax.Config{Brokers: []string{"127.0.0.1:9092"}, ClientID: "collector"},
		Topics: Topics{Raw: kafkax.TopicSpec{Name: "events.raw.cn", Retention: 6 * time.Hour}},
	}
}

// Validate checks every key and resolves write key files.
func (c *Config) Validate() error {
	errs := []error{
		c.Log.Validate("log"),
		c.Admin.Validate("admin"),
		config.ValidateListen("http.listen", c.HTTP.Listen),
		c.Kafka.Validate("kafka"),
		c.Topics.Raw.Validate("topics.raw"),
	}
	if c.Region == "" {
		errs = append(errs, config.Invalid("region", "is required"))
	}
	for key, d := range map[string]time.Duration{
		"http.read_header_timeout": c.HTTP.ReadHeaderTimeout,
		"http.read_timeout":        c.HTTP.ReadTimeout,
		"http.write_timeout":       c.HTTP.WriteTimeout,
		"http.idle_timeout":        c.HTTP.IdleTimeout,
		"http.produce_timeout":     c.HTTP.ProduceTimeout,
	} {
		if d <= 0 {
			errs = append(errs, config.Invalid(key, "must be a positive duration such as 5s, got %v", d))
		}
	}
	if c.HTTP.ProduceTimeout > 0 && c.HTTP.ProduceTimeout < time.Second {
		// franz-go's record delivery timeout, which this also sets, has a 1s floor.
		errs = append(errs, config.Invalid("http.produce_timeout", "must be at least 1s, got %v", c.HTTP.ProduceTimeout))
	}
	if c.HTTP.ProduceTimeout >= c.HTTP.WriteTimeout {
		errs = append(errs, config.Invalid("http.produce_timeout", "must be shorter than http.write_timeout (%v), or the 503 could not be written", c.HTTP.WriteTimeout))
	}
	if c.HTTP.MaxRequestBytes <= 0 {
		errs = append(errs, config.Invalid("http.max_request_bytes", "must be positive"))
	}
	if c.HTTP.MaxEventBytes <= 0 || int64(c.HTTP.MaxEventBytes) > c.HTTP.MaxRequestBytes {
		errs = append(errs, config.Invalid("http.max_event_bytes", "must be positive and at most http.max_request_bytes"))
	}
	if len(c.Sources) == 0 {
		errs = append(errs, config.Invalid("sources", "list at least one source with a write key"))
	}
	names := map[string]bool{}
	keys := map[config.Secret]string{} // write key -> source name
	for i := range c.Sources {
		s := &c.Sources[i]
		key := fmt.Sprintf("sources[%d]", i)
		if s.Name == "" {
			errs = append(errs, config.Invalid(key+".name", "is required"))
		} else if names[s.Name] {
			errs = append(errs, config.Invalid(key+".name", "duplicate source name %q", s.Name))
		}
		names[s.Name] = true
		wk, err := config.ResolveSecret(key+".write_key", s.WriteKey, s.WriteKeyFile)
		s.WriteKey = wk
		switch {
		case err != nil:
		case len(wk) < 8:
			err = config.Invalid(key+".write_key", "must be at least 8 characters (set write_key or write_key_file)")
		case keys[wk] != "":
			// One key, two sources: events would be credited to either.
			err = config.Invalid(key+".write_key", "is the same as the write key of source %q", keys[wk])
		}
		keys[wk] = s.Name
		errs = append(errs, err)
	}
	for i, cidr := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			errs = append(errs, config.Invalid(fmt.Sprintf("trusted_proxies[%d]", i), "must be a CIDR such as 10.0.0.0/8: %v", err))
		}
	}
	return config.Join(errs...)
}
