package ingest

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/consentflow/consentflow/internal/chx/chconfig"
	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/consenttoken"
	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/kafkax"
	"github.com/consentflow/consentflow/internal/keyring"
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
	CORS           CORS     `mapstructure:"cors"`
	Redirect       Redirect `mapstructure:"redirect"`
	// Privacy configures the privacy admin API, on a listener of its own.
	Privacy Privacy `mapstructure:"privacy"`
	// ConsentTokens verifies the consent tokens a first-party backend
	// signs, which let a client source make grants it may not make on its
	// own word. No keys: tokens are refused.
	ConsentTokens consenttoken.Config `mapstructure:"consent_tokens"`

	// DevMode lets the service run with the secrets shipped in the
	// repository (demo write keys, development keys and token), which
	// config.Load otherwise refuses: for `make run`, the tests and the
	// compose stack only. False by default.
	DevMode bool `mapstructure:"dev_mode"`
}

// Privacy configures the privacy admin API (erasures, their status and
// exports), served on a listener of its own (collector/privacyapi), never
// on the public or the admin port.
type Privacy struct {
	// Listen is host:port of the privacy API's listener. Any address but a
	// loopback one (127.0.0.1, ::1, localhost) needs TLS, unless
	// AllowPlaintext says otherwise. With no operators nothing listens.
	Listen string `mapstructure:"listen"`
	// AllowPlaintext lets a non-loopback Listen serve without TLS: only
	// where something else encrypts the hop, such as a service mesh's
	// sidecar, or where the port is published on loopback alone (compose).
	AllowPlaintext bool `mapstructure:"allow_plaintext"`
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout bound
	// a request's headers, its whole reading, the writing of its answer and
	// a keep-alive connection's wait for the next request. All positive;
	// WriteTimeout must exceed Export.Timeout, or an export's answer could
	// not be written.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	// TLS serves the API over TLS (cert_file, key_file) and, with
	// client_ca_file, asks every client for a certificate that CA signed.
	TLS config.ServerTLS `mapstructure:"tls"`
	// Operators may call the privacy admin API, each with a bearer token of
	// its own. Empty means none may: the API is off (nothing listens), and
	// the pseudonym and export keys below are not needed.
	Operators []Operator `mapstructure:"operators"`
	// Pseudonym is the in-region keyring, the enricher's `pseudonym`:
	// receipts and the audit name subjects by pseudonym, and an export
	// finds a subject's rows by it. The key comes by environment
	// (COLLECTOR_PRIVACY_PSEUDONYM_KEY) or key_file.
	Pseudonym keyring.Config `mapstructure:"pseudonym"`
	// Export reads a subject's rows from the region's database.
	Export PrivacyExport `mapstructure:"export"`
}

// PrivacyExport is where POST /v1/privacy/exports reads.
type PrivacyExport struct {
	// ClickHouse should log in as a read-only user confined to Database
	// (deployments/clickhouse: privacy-reader).
	ClickHouse chconfig.Config `mapstructure:"clickhouse"`
	Database   string          `mapstructure:"database"`
	// MaxRows bounds one export; a subject with more rows gets 413 and the
	// privacy office exports from ClickHouse directly.
	MaxRows int `mapstructure:"max_rows"`
	// Timeout bounds the query.
	Timeout time.Duration `mapstructure:"timeout"`
	// Abroad is the export destination's copy (the enricher's export.name),
	// which an export covers too. Empty name: none.
	Abroad PrivacyAbroad `mapstructure:"abroad"`
}

// PrivacyAbroad is an export destination's database, read under that
// destination's own keys.
type PrivacyAbroad struct {
	// Name is the destination, as the enricher's export.name.
	Name string `mapstructure:"name"`
	// ClickHouse should log in as a read-only user confined to Database.
	ClickHouse chconfig.Config `mapstructure:"clickhouse"`
	Database   string          `mapstructure:"database"`
	// Pseudonym is the enricher's export.pseudonym keyring; the key comes
	// by environment (COLLECTOR_PRIVACY_EXPORT_ABROAD_PSEUDONYM_KEY) or
	// key_file.
	Pseudonym keyring.Config `mapstructure:"pseudonym"`
}

// Operator is one holder of a privacy admin API token, named in the
// erasure log and in the collector's logs.
type Operator struct {
	// Name identifies the operator in erasure records and logs.
	Name string `mapstructure:"name"`
	// TokenFile holds the operator's bearer token (at least 32 bytes; a
	// trailing newline is ignored), e.g. from `openssl rand -hex 32`. A
	// relative path is relative to the working directory. Tokens come only
	// from files, never from the YAML itself.
	TokenFile string `mapstructure:"token_file"`
	// Token is read from TokenFile by Resolve.
	Token config.Secret `mapstructure:"-"`
}

// minOperatorToken is the shortest operator token accepted, in bytes.
const minOperatorToken = 32

// CORS lets browser SDKs on other origins post events.
type CORS struct {
	// AllowedOrigins are origins such as https://shop.example, or "*" for
	// any. Empty means any. Credentials are never allowed: SDKs send the
	// write key explicitly, not as a cookie.
	AllowedOrigins []string `mapstructure:"allowed_origins"`
}

// Redirect configures click tracking (GET /v1/redirect).
type Redirect struct {
	// AllowedHosts are the hosts a click may be sent on to: "shop.example"
	// matches that host only, "*.shop.example" its subdomains. Empty means
	// /v1/redirect refuses every target, so the collector is never an open
	// redirect.
	AllowedHosts []string `mapstructure:"allowed_hosts"`
}

// HTTP configures the public ingest server.
type HTTP struct {
	// Listen is host:port.
	Listen            string        `mapstructure:"listen"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	// BodyTimeout is how long a request's body may take to arrive, from
	// when the collector starts reading it; a body still incomplete then
	// is answered 408 and the connection closed. It takes over from
	// ReadTimeout for the body, and may not exceed it. A client holds no
	// in-flight slot while its body arrives, but it does hold memory and
	// a connection.
	BodyTimeout time.Duration `mapstructure:"body_timeout"`
	// MaxRequestBytes bounds a request body after decompression.
	MaxRequestBytes int64 `mapstructure:"max_request_bytes"`
	// MaxEventBytes bounds one event of a batch.
	MaxEventBytes int `mapstructure:"max_event_bytes"`
	// ProduceTimeout is how long a request waits for Kafka to acknowledge
	// its events before answering 503. At least 1s.
	ProduceTimeout time.Duration `mapstructure:"produce_timeout"`
	// MaxJSONDepth bounds the nesting of objects and arrays in one event.
	MaxJSONDepth int `mapstructure:"max_json_depth"`
	// MaxJSONKeys bounds the object keys in one event, all levels together.
	MaxJSONKeys int `mapstructure:"max_json_keys"`
	// MaxBufferedRecords bounds the events waiting in the producer for
	// Kafka; a request that would exceed it is answered 503 at once
	// instead of queueing.
	MaxBufferedRecords int `mapstructure:"max_buffered_records"`
	// MaxInFlightRequests bounds the requests being served at once, once
	// their body is read: decoded, validated and waiting for Kafka. One
	// more is answered 503 at once. A request whose body is still arriving
	// takes none, so slow clients cannot hold them all.
	MaxInFlightRequests int `mapstructure:"max_in_flight_requests"`
	// MaxBodyMemoryBytes bounds the bytes of request bodies held at once:
	// those arriving (counted as they arrive), being decoded (and a gzip
	// decoder's state) and being served. A request that would pass it is
	// answered 503 at once and its connection closed. Buffers grow by
	// doubling, so the memory behind it is up to about twice as much. At
	// least twice max_request_bytes plus 64 KiB (one request of the
	// largest size, gzipped).
	MaxBodyMemoryBytes int64 `mapstructure:"max_body_memory_bytes"`
	// MaxEventAge is how much older than its receipt an event or a consent
	// update may be, by its clock-corrected timestamp (a device that was
	// offline uploads late); an older one is refused. Positive.
	MaxEventAge time.Duration `mapstructure:"max_event_age"`
	// MaxFutureSkew is how far after its receipt an event or a consent
	// update may be stamped (a device clock ahead, with no sentAt to
	// correct it); a later one is refused. Zero refuses any.
	MaxFutureSkew time.Duration `mapstructure:"max_future_skew"`
}

// TimeBounds are the bounds on event times around their receipt.
func (h HTTP) TimeBounds() event.TimeBounds {
	return event.TimeBounds{MaxAge: h.MaxEventAge, MaxFuture: h.MaxFutureSkew}
}

// Topics the collector writes.
type Topics struct {
	Raw kafkax.TopicSpec `mapstructure:"raw"`
	// Consent is the compacted topic of consent states, keyed by subject.
	Consent kafkax.TopicSpec `mapstructure:"consent"`
	// Erasures is the erasure log, keyed by the subject's pseudonym: the
	// suppression list the enricher reads. Compacted and never tombstoned.
	Erasures kafkax.TopicSpec `mapstructure:"erasures"`
	// ErasureRequests carries each erasure, keyed by the raw identifier,
	// to the enricher, which names the subject to every destination by its
	// pseudonyms there. Deleted after its retention: the one place an
	// erased identifier is written, and only for that long.
	ErasureRequests kafkax.TopicSpec `mapstructure:"erasure_requests"`
	// Receipts is where every stage records what it did with a privacy
	// request; the collector writes the first and reads them all for a
	// request's status.
	Receipts kafkax.TopicSpec `mapstructure:"receipts"`
	// Identities are the enricher's identity links, which an export follows.
	Identities kafkax.TopicSpec `mapstructure:"identities"`
}

// Source is one sending application and its write key.
type Source struct {
	// Name identifies the source in events (sourceId) and metrics.
	Name string `mapstructure:"name"`
	// WriteKey is the key SDKs send as the HTTP Basic username. Prefer
	// WriteKeyFile outside development.
	WriteKey     config.Secret `mapstructure:"write_key"`
	WriteKeyFile string        `mapstructure:"write_key_file"`
	// Enabled false refuses the source with 403 while its key stays known.
	// Unset means true.
	Enabled *bool `mapstructure:"enabled"`
	// Region is the source's home region. Empty means the collector's; a
	// collector serves one region, so any other value is an error.
	Region string `mapstructure:"region"`
	// RateLimit bounds the source's events per second.
	RateLimit RateLimit `mapstructure:"rate_limit"`
	// TrustContextIP lets the source's context.ip (the end user's address
	// as a server-side SDK reports it) stand for the client IP. Off, the IP
	// is the request's own, and context.ip is ignored: a browser could
	// otherwise pick the address, and country, it is recorded under.
	TrustContextIP bool `mapstructure:"trust_context_ip"`
	// Trust is TrustClient (the default: a key that ships in web pages and
	// apps, which anyone may read) or TrustServer (a secret key of a
	// first-party backend). It decides what the source may say about
	// consent and identity (README, "Trust model").
	Trust string `mapstructure:"trust"`
}

// Trust levels of a source.
const (
	TrustClient = "client"
	TrustServer = "server"
)

// IsServer reports whether the source is a server source.
func (s Source) IsServer() bool { return s.Trust == TrustServer }

// IsEnabled reports whether the source may send.
func (s Source) IsEnabled() bool { return s.Enabled == nil || *s.Enabled }

// RateLimit is a token bucket of events. Zero EventsPerSecond means no limit.
type RateLimit struct {
	EventsPerSecond float64 `mapstructure:"events_per_second"`
	// Burst is the bucket's size: the most events accepted at once. A
	// request with more valid events than Burst can never pass and is
	// refused with 413. Zero means one second's worth, and at least 500.
	Burst int `mapstructure:"burst"`
}

// Default returns the config with every default filled in.
func Default() Config {
	return Config{
		Region: "cn",
		Admin:  config.Admin{Listen: ":9101"},
		HTTP: HTTP{
			Listen:              ":8080",
			ReadHeaderTimeout:   5 * time.Second,
			ReadTimeout:         30 * time.Second,
			BodyTimeout:         10 * time.Second,
			WriteTimeout:        30 * time.Second,
			IdleTimeout:         120 * time.Second,
			MaxRequestBytes:     500 << 10,
			MaxEventBytes:       32 << 10,
			ProduceTimeout:      5 * time.Second,
			MaxJSONDepth:        32,
			MaxJSONKeys:         1000,
			MaxBufferedRecords:  100000,
			MaxInFlightRequests: 256,
			MaxBodyMemoryBytes:  128 << 20,
			MaxEventAge:         7 * 24 * time.Hour,
			MaxFutureSkew:       time.Hour,
		},
		Kafka: kafkax.Config{Brokers: []string{"127.0.0.1:9092"}, ClientID: "collector"},
		Topics: Topics{
			Raw:             kafkax.TopicSpec{Name: "events.raw.cn", Retention: 6 * time.Hour},
			Consent:         kafkax.TopicSpec{Name: "privacy.consent", CleanupPolicy: "compact"},
			Erasures:        kafkax.TopicSpec{Name: "privacy.erasures", CleanupPolicy: "compact"},
			ErasureRequests: kafkax.TopicSpec{Name: "privacy.erasure-requests", Retention: 7 * 24 * time.Hour},
			Receipts:        kafkax.TopicSpec{Name: "privacy.receipts", CleanupPolicy: "compact"},
			Identities:      kafkax.TopicSpec{Name: "privacy.identities", CleanupPolicy: "compact"},
		},
		ConsentTokens: consenttoken.Default(),
		Privacy: Privacy{
			Listen:            "127.0.0.1:9105",
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      45 * time.Second,
			IdleTimeout:       60 * time.Second,
			Pseudonym:         keyring.Config{KeyID: "k1"},
			Export: PrivacyExport{ClickHouse: chconfig.Config{Addr: []string{"127.0.0.1:9000"}}, Database: "analytics_cn",
				MaxRows: 100000, Timeout: 30 * time.Second,
				Abroad: PrivacyAbroad{ClickHouse: chconfig.Config{Addr: []string{"127.0.0.1:9000"}}, Pseudonym: keyring.Config{KeyID: "x1"}}},
		},
	}
}

// Resolve reads the secrets the config's files hold (write keys, the
// Kafka password, consent token keys, and for the privacy API operator
// tokens, pseudonym keys and ClickHouse passwords), checks the TLS files,
// and makes an unset source trust TrustClient (config.Resolver).
func (c *Config) Resolve() error {
	errs := []error{c.Kafka.Resolve("kafka"), c.ConsentTokens.Resolve("consent_tokens"), c.Privacy.resolve()}
	for i := range c.Sources {
		s := &c.Sources[i]
		key := fmt.Sprintf("sources[%d]", i)
		wk, err := config.ResolveSecret(key+".write_key", s.WriteKey, s.WriteKeyFile)
		s.WriteKey = wk
		errs = append(errs, err)
		if s.Trust == "" {
			s.Trust = TrustClient
		}
	}
	return errors.Join(errs...)
}

// Validate checks every key of the resolved config, one section at a time.
func (c *Config) Validate() error {
	errs := []error{
		c.Log.Validate("log"),
		c.Admin.Validate("admin"),
		c.HTTP.validate(),
		c.Kafka.Validate("kafka"),
		c.Topics.validate(),
		c.validateSources(),
		validateTrustedProxies(c.TrustedProxies),
		c.CORS.validate(),
		c.Redirect.validate(),
		c.Privacy.validate(),
		c.ConsentTokens.Validate("consent_tokens"),
	}
	if c.Region == "" {
		errs = append(errs, config.Invalid("region", "is required"))
	}
	return errors.Join(errs...)
}

// validate checks each topic as the kind it is.
func (t Topics) validate() error {
	return errors.Join(
		kafkax.Transient.Validate("topics.raw", t.Raw),
		kafkax.Compacted.Validate("topics.consent", t.Consent),
		kafkax.Compacted.Validate("topics.erasures", t.Erasures),
		kafkax.Transient.Validate("topics.erasure_requests", t.ErasureRequests),
		kafkax.Compacted.Validate("topics.receipts", t.Receipts),
		kafkax.Compacted.Validate("topics.identities", t.Identities),
	)
}

// validate checks the public server's section: its listener, timeouts and
// limits.
func (h HTTP) validate() error {
	errs := []error{config.ValidateListen("http.listen", h.Listen), h.validateTimeouts()}
	for _, f := range []struct {
		key string
		n   int
	}{{"http.max_json_depth", h.MaxJSONDepth}, {"http.max_json_keys", h.MaxJSONKeys}, {"http.max_buffered_records", h.MaxBufferedRecords}, {"http.max_in_flight_requests", h.MaxInFlightRequests}} {
		if f.n <= 0 {
			errs = append(errs, config.Invalid(f.key, "must be positive, got %d", f.n))
		}
	}
	if h.MaxRequestBytes <= 0 {
		errs = append(errs, config.Invalid("http.max_request_bytes", "must be positive"))
	} else if least := maxBodyHeld(h.MaxRequestBytes); h.MaxBodyMemoryBytes < least {
		errs = append(errs, config.Invalid("http.max_body_memory_bytes", "must hold one request of the largest size: at least %d (twice http.max_request_bytes, a gzip body and its decoding, and a decoder's 64 KiB), got %d", least, h.MaxBodyMemoryBytes))
	}
	if h.MaxEventBytes <= 0 || int64(h.MaxEventBytes) > h.MaxRequestBytes {
		errs = append(errs, config.Invalid("http.max_event_bytes", "must be positive and at most http.max_request_bytes"))
	}
	return errors.Join(errs...)
}

// validateTimeouts checks the public server's timeouts and event time
// bounds, and how they must relate.
func (h HTTP) validateTimeouts() error {
	var errs []error
	errs = append(errs, config.PositiveDurations("5s",
		config.KeyedDuration{Key: "http.read_header_timeout", D: h.ReadHeaderTimeout},
		config.KeyedDuration{Key: "http.read_timeout", D: h.ReadTimeout},
		config.KeyedDuration{Key: "http.body_timeout", D: h.BodyTimeout},
		config.KeyedDuration{Key: "http.write_timeout", D: h.WriteTimeout},
		config.KeyedDuration{Key: "http.idle_timeout", D: h.IdleTimeout},
		config.KeyedDuration{Key: "http.produce_timeout", D: h.ProduceTimeout},
		config.KeyedDuration{Key: "http.max_event_age", D: h.MaxEventAge})...)
	if h.ProduceTimeout > 0 && h.ProduceTimeout < time.Second {
		// franz-go's record delivery timeout, which this also sets, has a 1s floor.
		errs = append(errs, config.Invalid("http.produce_timeout", "must be at least 1s, got %v", h.ProduceTimeout))
	}
	if h.ProduceTimeout >= h.WriteTimeout {
		errs = append(errs, config.Invalid("http.produce_timeout", "must be shorter than http.write_timeout (%v), or the 503 could not be written", h.WriteTimeout))
	}
	if h.MaxFutureSkew < 0 || h.MaxFutureSkew > maxFutureSkew {
		errs = append(errs, config.Invalid("http.max_future_skew", "must be between 0s and %v, got %v", maxFutureSkew, h.MaxFutureSkew))
	}
	if h.ReadTimeout > 0 && h.BodyTimeout > h.ReadTimeout {
		errs = append(errs, config.Invalid("http.body_timeout", "must be at most http.read_timeout (%v), got %v", h.ReadTimeout, h.BodyTimeout))
	}
	return errors.Join(errs...)
}

// validateSources checks the sources: names and write keys unique, trust
// levels known, every source in the collector's region.
func (c *Config) validateSources() error {
	if len(c.Sources) == 0 {
		return config.Invalid("sources", "list at least one source with a write key")
	}
	var errs []error
	names := map[string]bool{}
	keys := map[config.Secret]string{} // write key -> source name
	for i, s := range c.Sources {
		key := fmt.Sprintf("sources[%d]", i)
		if s.Name == "" {
			errs = append(errs, config.Invalid(key+".name", "is required"))
		} else if names[s.Name] {
			errs = append(errs, config.Invalid(key+".name", "duplicate source name %q", s.Name))
		}
		names[s.Name] = true
		switch {
		case len(s.WriteKey) < 8:
			errs = append(errs, config.Invalid(key+".write_key", "must be at least 8 characters (set write_key or write_key_file)"))
		case keys[s.WriteKey] != "":
			// One key, two sources: events would be credited to either.
			errs = append(errs, config.Invalid(key+".write_key", "is the same as the write key of source %q", keys[s.WriteKey]))
		}
		keys[s.WriteKey] = s.Name
		switch s.Trust {
		case "", TrustClient, TrustServer: // Resolve makes "" TrustClient
		default:
			errs = append(errs, config.Invalid(key+".trust", "must be %s (a key that ships in web pages and apps) or %s (a secret key of a first-party backend), got %q", TrustClient, TrustServer, s.Trust))
		}
		if s.Region != "" && s.Region != c.Region {
			errs = append(errs, config.Invalid(key+".region", "is %q but this collector serves region %q: run a collector per region", s.Region, c.Region))
		}
		if rl := s.RateLimit; !(rl.EventsPerSecond >= 0 && rl.EventsPerSecond <= 1e7) || rl.Burst < 0 || rl.Burst > 1e7 {
			errs = append(errs, config.Invalid(key+".rate_limit", "events_per_second and burst must be between 0 and 10,000,000"))
		}
	}
	return errors.Join(errs...)
}

// validateTrustedProxies checks that each trusted proxy is a CIDR.
func validateTrustedProxies(cidrs []string) error {
	var errs []error
	for i, cidr := range cidrs {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			errs = append(errs, config.Invalid(fmt.Sprintf("trusted_proxies[%d]", i), "must be a CIDR such as 10.0.0.0/8: %v", err))
		}
	}
	return errors.Join(errs...)
}

// validate checks that each allowed origin is "*" or an origin.
func (c CORS) validate() error {
	var errs []error
	for i, o := range c.AllowedOrigins {
		if o != "*" && (!strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.HasSuffix(o, "/")) {
			errs = append(errs, config.Invalid(fmt.Sprintf("cors.allowed_origins[%d]", i), "must be \"*\" or scheme://host[:port] with no path, got %q", o))
		}
	}
	return errors.Join(errs...)
}

// validate checks that each allowed host is a host name or a wildcard of
// one.
func (r Redirect) validate() error {
	var errs []error
	for i, h := range r.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/:@ ") || strings.Contains(strings.TrimPrefix(h, "*."), "*") {
			errs = append(errs, config.Invalid(fmt.Sprintf("redirect.allowed_hosts[%d]", i), "must be a host name such as shop.example or *.shop.example, got %q", h))
		}
	}
	return errors.Join(errs...)
}

// resolve reads what the privacy API's files hold: the operators' tokens,
// and the pseudonym keys and ClickHouse passwords of its exports, which
// only an API with operators needs (a pseudonym key given is read even
// without: the consent gate keys the suppression list by it).
func (p *Privacy) resolve() error {
	errs := []error{p.TLS.Resolve("privacy.tls")}
	if len(p.Operators) > 0 || p.Pseudonym.Key != "" || p.Pseudonym.KeyFile != "" {
		errs = append(errs, p.Pseudonym.Resolve("privacy.pseudonym"))
	}
	for i := range p.Operators {
		op := &p.Operators[i]
		if op.TokenFile == "" {
			continue // Validate says it is required
		}
		// ResolveSecret names key+"_file" when the file cannot be read.
		token, err := config.ResolveSecret(fmt.Sprintf("privacy.operators[%d].token", i), "", op.TokenFile)
		op.Token = token
		errs = append(errs, err)
	}
	if len(p.Operators) == 0 {
		return errors.Join(errs...)
	}
	errs = append(errs, p.Export.ClickHouse.Resolve("privacy.export.clickhouse"))
	if a := &p.Export.Abroad; a.Name != "" {
		errs = append(errs, a.Pseudonym.Resolve("privacy.export.abroad.pseudonym"), a.ClickHouse.Resolve("privacy.export.abroad.clickhouse"))
	}
	return errors.Join(errs...)
}

// validate checks the privacy API's section: its listener, operators and
// exports.
func (p *Privacy) validate() error {
	errs := []error{config.ValidateListen("privacy.listen", p.Listen), p.TLS.Validate("privacy.tls"), p.validateOperators()}
	if p.Listen != "" && !config.IsLoopback(p.Listen) && !p.TLS.Enabled() && !p.AllowPlaintext {
		// Bearer tokens and exports of personal data would cross the network in clear.
		errs = append(errs, config.Invalid("privacy.listen", "%q is not a loopback address, and the privacy API would serve operator tokens and exports in plaintext there: set privacy.tls.cert_file and privacy.tls.key_file, listen on 127.0.0.1, or, where something else encrypts the hop (a mesh sidecar), set privacy.allow_plaintext: true", p.Listen))
	}
	errs = append(errs, config.PositiveDurations("10s",
		config.KeyedDuration{Key: "privacy.read_header_timeout", D: p.ReadHeaderTimeout},
		config.KeyedDuration{Key: "privacy.read_timeout", D: p.ReadTimeout},
		config.KeyedDuration{Key: "privacy.write_timeout", D: p.WriteTimeout},
		config.KeyedDuration{Key: "privacy.idle_timeout", D: p.IdleTimeout})...)
	if p.WriteTimeout > 0 && p.Export.Timeout > 0 && p.WriteTimeout <= p.Export.Timeout {
		errs = append(errs, config.Invalid("privacy.write_timeout", "must be longer than privacy.export.timeout (%v), or an export's answer could not be written", p.Export.Timeout))
	}
	if len(p.Operators) == 0 {
		// Without the API, the key is optional: given, the consent gate
		// knows who is erased (the suppression list is keyed by it).
		if p.Pseudonym.Key != "" || p.Pseudonym.KeyFile != "" {
			errs = append(errs, p.Pseudonym.Validate("privacy.pseudonym", "COLLECTOR_PRIVACY_PSEUDONYM_KEY"))
		}
		return errors.Join(errs...)
	}
	errs = append(errs, p.Pseudonym.Validate("privacy.pseudonym", "COLLECTOR_PRIVACY_PSEUDONYM_KEY"), p.Export.validate())
	return errors.Join(errs...)
}

// validateOperators checks that operators have unique names and tokens,
// each a bearer token long enough.
func (p *Privacy) validateOperators() error {
	var errs []error
	names := map[string]bool{}
	tokens := map[config.Secret]string{} // token -> operator name
	for i, op := range p.Operators {
		key := fmt.Sprintf("privacy.operators[%d]", i)
		if op.Name == "" {
			errs = append(errs, config.Invalid(key+".name", "is required"))
		} else if names[op.Name] {
			errs = append(errs, config.Invalid(key+".name", "duplicate operator name %q", op.Name))
		}
		names[op.Name] = true
		switch {
		case op.TokenFile == "":
			errs = append(errs, config.Invalid(key+".token_file", "is required: a file holding the operator's token (tokens are never written in the YAML)"))
		case len(op.Token) < minOperatorToken:
			errs = append(errs, config.Invalid(key+".token_file", "the token is %d bytes, want at least %d (e.g. openssl rand -hex 32)", len(op.Token), minOperatorToken))
		case !isBearerToken(op.Token.Reveal()):
			errs = append(errs, config.Invalid(key+".token_file", "the token may hold only A-Z a-z 0-9 - . _ ~ + / = (a bearer token)"))
		case tokens[op.Token] != "":
			// One token, two operators: the erasure log could not say who asked.
			errs = append(errs, config.Invalid(key+".token_file", "holds the same token as operator %q", tokens[op.Token]))
		default:
			tokens[op.Token] = op.Name
		}
	}
	return errors.Join(errs...)
}

// validate checks where exports read: the region's database and, when an
// export destination is named, its own.
func (e PrivacyExport) validate() error {
	errs := []error{e.ClickHouse.Validate("privacy.export.clickhouse"), chconfig.ValidateIdentifier("privacy.export.database", e.Database)}
	if e.MaxRows <= 0 {
		errs = append(errs, config.Invalid("privacy.export.max_rows", "must be positive, got %d", e.MaxRows))
	}
	if e.Timeout <= 0 {
		errs = append(errs, config.Invalid("privacy.export.timeout", "must be a positive duration such as 30s"))
	}
	if a := e.Abroad; a.Name != "" {
		errs = append(errs, a.Pseudonym.Validate("privacy.export.abroad.pseudonym", "COLLECTOR_PRIVACY_EXPORT_ABROAD_PSEUDONYM_KEY"),
			a.ClickHouse.Validate("privacy.export.abroad.clickhouse"), chconfig.ValidateIdentifier("privacy.export.abroad.database", a.Database))
		if a.Database == e.Database {
			errs = append(errs, config.Invalid("privacy.export.abroad.database", "is the region's database %q: name the export destination's", a.Database))
		}
	}
	return errors.Join(errs...)
}

// isBearerToken reports whether s is an RFC 6750 b64token, so it can be
// sent in an Authorization header as it is.
func isBearerToken(s string) bool {
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~+/=", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}
