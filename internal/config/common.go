package config

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Log configures structured logging.
type Log struct {
	// Level is debug, info, warn or error. Empty means info.
	Level string `mapstructure:"level"`
	// Format is json or text. Empty means json.
	Format string `mapstructure:"format"`
}

// Validate checks the level and format names.
func (l Log) Validate(prefix string) error {
	var errs []error
	if _, err := l.SlogLevel(); err != nil {
		errs = append(errs, Invalid(prefix+".level", "must be debug, info, warn or error, got %q", l.Level))
	}
	if f := strings.ToLower(l.Format); f != "" && f != "json" && f != "text" {
		errs = append(errs, Invalid(prefix+".format", "must be json or text, got %q", l.Format))
	}
	return errors.Join(errs...)
}

// SlogLevel parses Level.
func (l Log) SlogLevel() (slog.Level, error) {
	var lvl slog.Level
	if l.Level == "" {
		return slog.LevelInfo, nil
	}
	err := lvl.UnmarshalText([]byte(l.Level))
	return lvl, err
}

// Admin configures the operational HTTP server (/metrics, /healthz, /readyz).
type Admin struct {
	// Listen is host:port; a bare :port listens on every interface.
	Listen string `mapstructure:"listen"`
	// DrainDelay is how long shutdown waits after /readyz starts failing
	// before it stops serving, so load balancers see the failure and send
	// no new work. Zero means no wait; set it to your probe interval.
	DrainDelay time.Duration `mapstructure:"drain_delay"`
}

// Validate checks the listen address and delay.
func (a Admin) Validate(prefix string) error {
	if a.DrainDelay < 0 {
		return Invalid(prefix+".drain_delay", "must not be negative")
	}
	return ValidateListen(prefix+".listen", a.Listen)
}

// ValidateListen checks a host:port listen address.
func ValidateListen(key, addr string) error {
	if addr == "" {
		return Invalid(key, "is required (host:port)")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return Invalid(key, "must be host:port: %v", err)
	}
	return nil
}

// ValidateHostPort checks an address to dial: host:port, both present.
func ValidateHostPort(key, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return Invalid(key, "must be host:port, got %q", addr)
	}
	return nil
}

// IsLoopback reports whether a listen address (host:port) binds a loopback
// interface only: a loopback IP literal or localhost. An empty host (":9105")
// binds every interface, and any other name may resolve to anything, so
// neither is loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// KeyedDuration is a duration and its key, for PositiveDurations.
type KeyedDuration struct {
	Key string
	D   time.Duration
}

// PositiveDurations refuses each duration not above zero, naming its key;
// example is a duration the message suggests.
func PositiveDurations(example string, ds ...KeyedDuration) []error {
	var errs []error
	for _, d := range ds {
		if d.D <= 0 {
			errs = append(errs, Invalid(d.Key, "must be a positive duration such as %s, got %v", example, d.D))
		}
	}
	return errs
}
