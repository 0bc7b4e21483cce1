package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phuslu/iploc"

	"github.com/consentflow/consentflow/internal/catalogue"
	"github.com/consentflow/consentflow/internal/pii"
)

// Key is one pseudonymization key of a keyring.
type Key struct {
	ID     string
	Secret []byte
	// From is when the key takes over: events received from then on are
	// pseudonymized with it. Zero for the first key.
	From time.Time
	// Retired keys pseudonymize nothing new; they stay in the keyring while
	// rows under them may exist, so erasure and export still find them.
	Retired bool
}

// Keyring holds a destination's keys in rotation order. Which key applies
// depends on the event's receivedAt, never on the clock of the moment, so
// every instance and every replay of an event writes the same pseudonym.
type Keyring struct {
	keys    []*Pseudonymizer // by From, oldest first
	froms   []time.Time
	retired []*Pseudonymizer
}

// NewKeyring checks each key and that ids are unique. At least one key
// must be in service (not retired).
func NewKeyring(keys ...Key) (*Keyring, error) {
	if !slices.ContainsFunc(keys, func(k Key) bool { return !k.Retired }) {
		return nil, errors.New("no key in service")
	}
	sorted := slices.Clone(keys)
	slices.SortStableFunc(sorted, func(a, b Key) int { return a.From.Compare(b.From) })
	k := &Keyring{}
	seen := map[string]bool{}
	for _, key := range sorted {
		if seen[key.ID] {
			return nil, fmt.Errorf("key id %q used twice", key.ID)
		}
		seen[key.ID] = true
		p, err := NewPseudonymizer(key.ID, key.Secret)
		if err != nil {
			return nil, err
		}
		if key.Retired {
			k.retired = append(k.retired, p)
			continue
		}
		k.keys = append(k.keys, p)
		k.froms = append(k.froms, key.From)
	}
	return k, nil
}

// At returns the key in force for an event received at t: the newest one
// whose From is not after t (the oldest when t precedes them all).
func (k *Keyring) At(t time.Time) *Pseudonymizer {
	i := len(k.keys) - 1
	for i > 0 && k.froms[i].After(t) {
		i--
	}
	return k.keys[i]
}

// Pseudonyms returns value's pseudonym under every key of the keyring,
// retired keys first, then those in service, oldest first: what an
// erasure must delete and an export must find, whenever the rows were
// written.
func (k *Keyring) Pseudonyms(kind, value string) []string {
	out := make([]string, 0, len(k.retired)+len(k.keys))
	for _, p := range k.all() {
		out = append(out, p.Pseudonym(kind, value))
	}
	return out
}

// KeyIDs lists the ids of the keyring in the order of Pseudonyms.
func (k *Keyring) KeyIDs() []string {
	ids := make([]string, 0, len(k.retired)+len(k.keys))
	for _, p := range k.all() {
		ids = append(ids, p.keyID)
	}
	return ids
}

// ByID is the keyring's key of id (retired ones included), or nil.
func (k *Keyring) ByID(id string) *Pseudonymizer {
	for _, p := range k.all() {
		if p.keyID == id {
			return p
		}
	}
	return nil
}

func (k *Keyring) all() []*Pseudonymizer { return slices.Concat(k.retired, k.keys) }

// Settings are what a de-identification profile keeps and how coarsely.
// Zero values are the strict choice where there is one.
type Settings struct {
	// IP is "truncate" (/24 or /48, after deriving the country) or "drop".
	IP string `mapstructure:"ip"`
	// DeviceIDs keeps device-level identifiers (device id, advertising id,
	// IMEI, Android ID, MAC) as pseudonyms; false drops them.
	DeviceIDs bool `mapstructure:"device_ids"`
	// UserAgent is "parse" (browser, OS and device class) or "drop".
	UserAgent string `mapstructure:"user_agent"`
	// Detail is "full" (versions, the standard context allow-list, exact
	// times) or "coarse" (families only, a short context, times to the
	// hour).
	Detail string `mapstructure:"detail"`
	// DropFields removes these paths (properties.<key>... or
	// context.<key>...) from the output.
	DropFields []string `mapstructure:"drop_fields"`
	// ScrubPatterns are more regular expressions whose matches in property
	// values become "[<name>]", after the built-in ones.
	ScrubPatterns []ScrubPattern `mapstructure:"scrub_patterns"`
	// Undeclared is what becomes of properties the event catalogue does
	// not declare: "scrub" keeps them with personal data in their values
	// replaced and members whose keys are personal dropped, "drop" (and
	// empty) drops them. An export profile drops them whatever it says.
	Undeclared string `mapstructure:"undeclared"`
}

// The choices of Settings.Undeclared.
const (
	UndeclaredScrub = "scrub"
	UndeclaredDrop  = "drop"
)

// ScrubPattern is a named regular expression (RE2 syntax).
type ScrubPattern struct {
	Name    string `mapstructure:"name"`
	Pattern string `mapstructure:"pattern"`
}

var scrubNamePattern = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// Validate checks the settings; errors name the key under prefix.
func (s Settings) Validate() error {
	var errs []error
	if s.IP != "truncate" && s.IP != "drop" {
		errs = append(errs, fmt.Errorf("ip: %q is not truncate or drop", s.IP))
	}
	if s.UserAgent != "parse" && s.UserAgent != "drop" {
		errs = append(errs, fmt.Errorf("user_agent: %q is not parse or drop", s.UserAgent))
	}
	if s.Detail != "full" && s.Detail != "coarse" {
		errs = append(errs, fmt.Errorf("detail: %q is not full or coarse", s.Detail))
	}
	if s.Undeclared != "" && s.Undeclared != UndeclaredScrub && s.Undeclared != UndeclaredDrop {
		errs = append(errs, fmt.Errorf("undeclared: %q is not scrub or drop", s.Undeclared))
	}
	for i, f := range s.DropFields {
		root, rest, _ := strings.Cut(f, ".")
		if (root != "properties" && root != "context") || rest == "" || slices.Contains(strings.Split(rest, "."), "") {
			errs = append(errs, fmt.Errorf("drop_fields[%d]: %q is not properties.<key>[.<key>...] or context.<key>[.<key>...]", i, f))
		}
	}
	for i, p := range s.ScrubPatterns {
		if !scrubNamePattern.MatchString(p.Name) {
			errs = append(errs, fmt.Errorf("scrub_patterns[%d].name: %q must be 1-32 of a-z, 0-9 and _", i, p.Name))
		}
		re, err := regexp.Compile(p.Pattern)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("scrub_patterns[%d].pattern: %v", i, err))
		case re.MatchString(""):
			errs = append(errs, fmt.Errorf("scrub_patterns[%d].pattern: %q matches the empty string", i, p.Pattern))
		}
	}
	return errors.Join(errs...)
}

// StricterThan says why s keeps something that base does not, or nil: an
// export profile must keep no more than the in-region one.
func (s Settings) StricterThan(base Settings) error {
	switch {
	case s.IP == "truncate" && base.IP == "drop":
		return errors.New("ip: keeps the truncated IP that the in-region profile drops")
	case s.DeviceIDs && !base.DeviceIDs:
		return errors.New("device_ids: keeps device identifiers that the in-region profile drops")
	case s.UserAgent == "parse" && base.UserAgent == "drop":
		return errors.New("user_agent: keeps what the in-region profile drops")
	case s.Detail == "full" && base.Detail == "coarse":
		return errors.New("detail: full where the in-region profile is coarse")
	case s.Undeclared == UndeclaredScrub && base.Undeclared != UndeclaredScrub:
		return errors.New("undeclared: scrubs what the in-region profile drops")
	}
	for _, f := range base.DropFields {
		if !slices.Contains(s.DropFields, f) {
			return fmt.Errorf("drop_fields: keeps %s that the in-region profile drops", f)
		}
	}
	for _, p := range base.ScrubPatterns {
		if !slices.Contains(s.ScrubPatterns, p) {
			return fmt.Errorf("scrub_patterns: lacks %s that the in-region profile scrubs", p.Name)
		}
	}
	return nil
}

// Declared is what a profile knows of the event catalogue and where its
// output goes.
type Declared struct {
	// Catalogue declares events and fields; nil declares nothing (and
	// counts no violation).
	Catalogue *catalogue.Catalogue
	// Export says the output leaves the home region: only declared public
	// values are kept, and only declared event names.
	Export bool
	// Categories are the consent categories the rules know: of the
	// categories an event carries (context.consent.categoryPreferences),
	// only these are kept. Nil keeps every name the scrubbers find
	// nothing in.
	Categories CategoryMap
}

// Profile is a named de-identification profile with its keys.
type Profile struct {
	Name     string
	settings Settings
	keys     *Keyring
	agents   *UserAgentParser
	declared Declared
	scrubber *pii.Scrubber
	drops    [][]string // DropFields split at dots
	// fullDecls and coarseDecls are the catalogue's declarations of the
	// context allow-lists.
	fullDecls, coarseDecls []contextDecl
	// paths remembers violation paths, by their keys joined with zero
	// bytes (violationPath).
	paths struct {
		sync.RWMutex
		m map[string]string
	}
}

// NewProfile builds a profile; agents may be shared by profiles.
func NewProfile(name string, s Settings, keys *Keyring, agents *UserAgentParser, declared Declared) (*Profile, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var extra []pii.Pattern
	for _, sp := range s.ScrubPatterns {
		extra = append(extra, pii.Pattern{Name: sp.Name, Re: regexp.MustCompile(sp.Pattern)})
	}
	p := &Profile{Name: name, settings: s, keys: keys, agents: agents, declared: declared, scrubber: pii.NewScrubber(extra...)}
	p.paths.m = map[string]string{}
	p.fullDecls, p.coarseDecls = contextDeclsOf(declared.Catalogue, contextAllowList), contextDeclsOf(declared.Catalogue, coarseContextAllowList)
	for _, f := range s.DropFields {
		p.drops = append(p.drops, strings.Split(f, "."))
	}
	return p, nil
}

// Declared is what the profile knows of the catalogue.
func (p *Profile) Declared() Declared { return p.declared }

// Keys is the profile's keyring.
func (p *Profile) Keys() *Keyring { return p.keys }

// Country is the ISO 3166-1 alpha-2 code of the address's country, or ""
// for an address that is not public or not known.
func Country(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	addr = addr.Unmap()
	if !addr.IsGlobalUnicast() || addr.IsPrivate() {
		return ""
	}
	if c := iploc.IPCountry(addr); c != "ZZ" {
		return c
	}
	return ""
}
