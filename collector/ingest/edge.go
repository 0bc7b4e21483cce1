package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/consentflow/consentflow/internal/event"
)

// authenticate finds the source whose write key the request carries: the
// HTTP Basic username (Segment's server SDKs) or else writeKey in the body
// (its browser library). Every key is compared in constant time and the
// loop never exits early, so timing says nothing about near misses.
func (s *Server) authenticate(r *http.Request, bodyKey string) (*source, result, bool) {
	key, _, ok := r.BasicAuth()
	if !ok || key == "" {
		key = bodyKey
	}
	if key == "" {
		return nil, fail(http.StatusUnauthorized, "missing write key (send it as the HTTP Basic username or as writeKey in the body)"), false
	}
	var match *source
	given := sha256.Sum256([]byte(key))
	for _, src := range s.sources {
		if subtle.ConstantTimeCompare(given[:], src.keyHash[:]) == 1 {
			match = src
		}
	}
	switch {
	case match == nil:
		return nil, fail(http.StatusUnauthorized, "unknown write key"), false
	case !match.IsEnabled():
		return nil, fail(http.StatusForbidden, "source %q is disabled", match.Name), false
	}
	return match, result{}, true
}

func (s *Server) signals(r *http.Request) event.Signals {
	// Copied into every event of the request: a 30 KB User-Agent times a
	// batch of small events would multiply the request's size.
	ua, cut := event.CapUserAgent(r.UserAgent())
	if cut {
		ua = strings.ToValidUTF8(ua, "")
	}
	return event.Signals{
		// Canonical spellings: Get would allocate to canonicalize others.
		DNT:       r.Header.Get("Dnt") == "1",
		GPC:       r.Header.Get("Sec-Gpc") == "1",
		IP:        s.clientIP(r),
		UserAgent: ua,
	}
}

// clientIP is the TCP peer, or, when the peer is a trusted proxy, the
// right-most X-Forwarded-For hop that is not itself a trusted proxy. Hops
// left of that were written by the client and prove nothing.
func (s *Server) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	addr := peer.Addr().Unmap()
	if !s.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = hop.Unmap()
		if !s.trusted(addr) {
			break
		}
	}
	return addr.String()
}

func (s *Server) trusted(addr netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// cors answers preflight requests and marks responses readable by the
// allowed origins. A request from an origin not allowed is refused: browsers
// send some cross-origin POSTs without a preflight.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" {
			allowed := s.allowedOrigin(origin)
			if allowed == "" {
				writeJSON(w, http.StatusForbidden, response{Error: fmt.Sprintf("origin %q is not in cors.allowed_origins", origin)})
				return
			}
			w.Header().Set("Access-Control-Allow-Origin", allowed)
			w.Header().Set("Access-Control-Expose-Headers", "Retry-After")
			if allowed != "*" {
				w.Header().Add("Vary", "Origin")
			}
		}
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedOrigin is the Access-Control-Allow-Origin value for origin, or ""
// when it is not allowed.
func (s *Server) allowedOrigin(origin string) string {
	origins := s.cfg.CORS.AllowedOrigins
	switch {
	case len(origins) == 0 || slices.Contains(origins, "*"):
		return "*"
	case slices.Contains(origins, origin):
		return origin
	}
	return ""
}
