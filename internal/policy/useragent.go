package policy

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ua-parser/uap-go/uaparser"
	"golang.org/x/time/rate"

	"github.com/consentflow/consentflow/internal/event"
	"github.com/consentflow/consentflow/internal/pii"
)

// UserAgentParser generalizes user agents with ua-parser's maintained
// regexes. Parsing one runs up to some 1,200 regexes over it, a
// millisecond or more of CPU, so results are cached: a fleet sends few
// distinct user agents. A client chooses its user agent, though, and
// may make every one unique, so the cost of one is bounded too: the
// parser reads at most event.MaxUserAgentBytes of it (the regexes' time
// grows with the length), and leaves unparsed one shaped to make them
// slow (maxUserAgentSemicolons); and LimitParses bounds the parses per
// second, whatever the user agents.
type UserAgentParser struct {
	p         *uaparser.Parser
	cacheSize int
	scrubber  *pii.Scrubber
	// budget, if set, bounds the parses (cache misses) per second: a
	// client that makes every user agent unique pays for what the budget
	// allows, and the rest of its user agents generalize to device class
	// other, uncached, until the budget refills.
	budget     *rate.Limiter
	overBudget atomic.Uint64

	mu    sync.RWMutex
	cache map[string]Agent
}

// LimitParses bounds the parses to perSecond on average, in bursts of up
// to burst (0: no bound). Returned for chaining.
func (u *UserAgentParser) LimitParses(perSecond, burst int) *UserAgentParser {
	if perSecond > 0 {
		u.budget = rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
	}
	return u
}

// OverBudget counts the user agents left unparsed because the budget was
// spent, since the parser was made.
func (u *UserAgentParser) OverBudget() uint64 { return u.overBudget.Load() }

// NewUserAgentParser compiles the embedded regexes (a few hundred
// milliseconds, once per process) and remembers up to cacheSize results.
func NewUserAgentParser(cacheSize int) (*UserAgentParser, error) {
	// ua-parser's own cache is per field and parses the three fields in
	// goroutines; one cache of whole results in front of it is cheaper, and
	// its own can stay small (it refuses zero).
	p, err := uaparser.New(uaparser.WithCacheSize(16))
	if err != nil {
		return nil, err
	}
	return &UserAgentParser{p: p, cacheSize: cacheSize, scrubber: pii.NewScrubber(), cache: map[string]Agent{}}, nil
}

// Agent is what a user agent says once generalized.
type Agent struct {
	Browser, BrowserVersion string
	OS, OSVersion           string
	// DeviceClass is desktop, mobile, tablet, bot or other.
	DeviceClass string
}

// Parse generalizes one user agent, from its first
// event.MaxUserAgentBytes; "" gives the zero Agent.
func (u *UserAgentParser) Parse(ua string) Agent {
	ua, _ = event.CapUserAgent(ua)
	if ua == "" {
		return Agent{}
	}
	u.mu.RLock()
	a, ok := u.cache[ua]
	u.mu.RUnlock()
	if ok {
		return a
	}
	if u.budget != nil && !u.budget.Allow() {
		u.overBudget.Add(1)
		return Agent{DeviceClass: "other"}
	}
	// ua may be a window on a whole fetch of records (Parsed reads strings
	// in place); the caches must not keep that alive.
	ua = strings.Clone(ua)
	a = u.parse(ua)
	u.mu.Lock()
	if len(u.cache) >= u.cacheSize {
		clear(u.cache) // a crude bound, but user agents repeat within minutes
	}
	u.cache[ua] = a
	u.mu.Unlock()
	return a
}

func (u *UserAgentParser) parse(ua string) Agent {
	if !ParseableUserAgent(ua) {
		return Agent{DeviceClass: "other"} // what a user agent no regex knows gives
	}
	c := u.p.Parse(ua)
	a := Agent{Browser: u.family(c.UserAgent.Family), BrowserVersion: major(c.UserAgent.Major),
		OS: u.family(c.Os.Family), OSVersion: major(c.Os.Major)}
	if a.Browser == "" {
		a.BrowserVersion = ""
	}
	if a.OS == "" {
		a.OSVersion = ""
	}
	a.DeviceClass = deviceClass(ua, c)
	return a
}

// maxUserAgentSemicolons bounds the semicolons of a user agent that is
// parsed. Hundreds of ua-parser's device regexes start at "; ", so each
// semicolon is a place where all of them try to match: 512 semicolons
// cost the regexes three times what 512 other bytes do, the costliest
// shape found (README, "User agents"). Real user agents have at most 16
// (uap-go's sample of 100,000).
const maxUserAgentSemicolons = 32

// ParseableUserAgent reports whether ua is parsed, cut to
// event.MaxUserAgentBytes: one with more than 32 semicolons is not, and
// generalizes to device class other.
func ParseableUserAgent(ua string) bool {
	ua, _ = event.CapUserAgent(ua)
	return strings.Count(ua, ";") <= maxUserAgentSemicolons
}

// family is a browser or OS family as the parser names it, or "" when
// it is unknown or is not a plain name. ua-parser's generic rules take a
// family from the user agent itself ("<name>/1.0 CFNetwork ..."), and a
// client writes its user agent: a family with personal data in it, or
// anything but letters, digits and a little punctuation, is dropped, so
// it reaches neither destination.
func (u *UserAgentParser) family(name string) string {
	if name == "Other" || name == "" || len(name) > maxFamilyBytes || !plainName(name) {
		return ""
	}
	if _, personal := u.scrubber.Find(name); personal {
		return ""
	}
	return name
}

const maxFamilyBytes = 40

// plainName says whether s holds a letter and only letters, digits,
// spaces and ._()+- (every family ua-parser names itself does).
func plainName(s string) bool {
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isLetter(c):
			letter = true
		case c >= '0' && c <= '9' || strings.IndexByte(" ._()+-", c) >= 0:
		default:
			return false
		}
	}
	return letter
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// major is a major version if it is one: up to 6 digits.
func major(v string) string {
	if len(v) == 0 || len(v) > 6 || strings.Trim(v, "0123456789") != "" {
		return ""
	}
	return v
}

// deviceClass sorts a device into the classes analysts compare. ua-parser
// names devices and OSes, not classes, so the class follows from them.
func deviceClass(ua string, c *uaparser.Client) string {
	device, os := c.Device.Family, c.Os.Family
	switch {
	case device == "Spider":
		return "bot"
	case device == "iPad" || strings.Contains(device, "Tablet") || strings.Contains(device, "Kindle"):
		return "tablet"
	case os == "Android" && !strings.Contains(ua, "Mobile"):
		return "tablet" // Android tablets leave "Mobile" out of the user agent
	case os == "iOS" || os == "Android" || os == "Windows Phone" || os == "HarmonyOS" || device == "iPhone":
		return "mobile"
	case os == "Windows" || os == "Mac OS X" || os == "Linux" || os == "Ubuntu" || os == "Chrome OS" || os == "Fedora":
		return "desktop"
	}
	return "other"
}

// Families that may leave the region: the browsers and systems ua-parser
// names itself. Its generic rules take a family from the user agent,
// which a client writes ("ZhangSan/1.0 CFNetwork/..."), so abroad any
// other family is "Other".
var (
	exportBrowsers = familySet("Chrome", "Chrome Mobile", "Chrome Mobile iOS", "Chrome Mobile WebView", "Chromium", "Edge", "Edge Mobile",
		"Firefox", "Firefox Mobile", "Firefox iOS", "Safari", "Mobile Safari", "Mobile Safari UI/WKWebView", "Opera", "Opera Mobile",
		"Opera Mini", "Samsung Internet", "UC Browser", "QQ Browser", "QQ Browser Mobile", "WeChat", "Baidu Browser", "Sogou Explorer",
		"Yandex Browser", "IE", "IE Mobile", "Android", "Facebook", "Instagram", "MiuiBrowser", "HeyTapBrowser", "Huawei Browser",
		"Vivo Browser", "DingTalk", "Alipay", "Googlebot", "bingbot", "Baiduspider", "curl", "Go-http-client", "Python Requests", "okhttp")
	exportSystems = familySet("Android", "iOS", "iPadOS", "Windows", "Mac OS X", "Linux", "Ubuntu", "Debian", "Fedora", "Chrome OS",
		"HarmonyOS", "Windows Phone", "KaiOS", "Tizen", "FreeBSD")
)

func familySet(names ...string) map[string]bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set
}

// exportFamily is family as it may leave the region: itself if known,
// "" if empty, else "Other".
func exportFamily(known map[string]bool, family string) string {
	if family == "" || known[family] {
		return family
	}
	return "Other"
}
