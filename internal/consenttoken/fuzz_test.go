package consenttoken

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var reasons = []string{
	ReasonMalformed, ReasonUnknownKey, ReasonBadSignature, ReasonExpired,
	ReasonNotYetValid, ReasonTooLongLived, ReasonInvalidClaims,
}

// FuzzVerify checks that Verify never panics, refuses with an *Error of a
// known reason whose message hides secrets, token and subject, and accepts
// only tokens that hold a valid HS256 signature under the key their kid
// names and whose claims keep every rule.
func FuzzVerify(f *testing.F) {
	good := goodClaims()
	f.Add(sign(f, key1, good))
	f.Add(sign(f, key2, good))
	minimal := Claims{AnonymousID: "a", IssuedAt: now, Expiry: now.Add(time.Second)}
	f.Add(sign(f, key1, minimal))
	expired := good
	expired.IssuedAt, expired.Expiry = now.Add(-2*time.Hour), now.Add(-time.Hour)
	f.Add(sign(f, key1, expired))
	bad := good
	bad.Purposes = []string{"ads", "ads"}
	f.Add(sign(f, key1, bad))
	f.Add(sign(f, Key{ID: "t9", Secret: key1.Secret}, good))
	f.Add(handToken(hs256t1, goodPayload(`,"nbf":1,"jti":"x","minor":null`), sha256.New, key1.Secret))
	f.Add(handToken(hs256t1, `{"userId":1}`, sha256.New, key1.Secret))
	f.Add(handToken(hs256t1, `[]`, sha256.New, key1.Secret))
	f.Add(handToken(`{"alg":"none","kid":"t1"}`, goodPayload(""), nil, nil))
	f.Add(handToken(`{"alg":"HS512","kid":"t1"}`, goodPayload(""), sha512.New, key1.Secret))
	f.Add(handToken(`{"alg":"HS256","kid":"t1","crit":["b64"],"b64":false}`, goodPayload(""), sha256.New, key1.Secret))
	f.Add(handToken(`{"alg":"HS256","kid":"t1","crit":["exp"]}`, goodPayload(""), sha256.New, key1.Secret))
	f.Add(handToken(`{"alg":"HS256"}`, goodPayload(""), sha256.New, key1.Secret))
	for _, s := range []string{"", ".", "..", "a.b.c", "e30.e30.", "eyJ9.e30.AA", strings.Repeat("A", 5000), "\x00.\xff.\n"} {
		f.Add(s)
	}

	v := newTestVerifier(f)
	secrets := map[string][]byte{key1.ID: key1.Secret, key2.ID: key2.Secret}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(token, now)
		if err != nil {
			checkRefusal(t, token, err)
			return
		}
		// Accepted: canonical, within the size limit...
		if len(token) > MaxTokenBytes {
			t.Fatalf("accepted a token of %d bytes", len(token))
		}
		parts := strings.Split(token, ".")
		for _, p := range parts {
			b, err := base64.RawURLEncoding.DecodeString(p)
			if err != nil || base64.RawURLEncoding.EncodeToString(b) != p {
				t.Fatalf("accepted a non-canonical part %q", p)
			}
		}
		// ...HS256 under the key its kid names, checked by go-jose alone...
		jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.HS256})
		if err != nil {
			t.Fatalf("accepted a token go-jose cannot parse: %v", err)
		}
		h := jws.Signatures[0].Header
		secret, ok := secrets[h.KeyID]
		if !ok || h.Algorithm != string(jose.HS256) {
			t.Fatalf("accepted alg %q kid %q", h.Algorithm, h.KeyID)
		}
		payload, err := jws.Verify(secret)
		if err != nil {
			t.Fatalf("accepted a token whose signature go-jose refuses: %v", err)
		}
		// ...whose claims keep every rule...
		if err := c.validate(); err != nil {
			t.Fatalf("accepted claims that break a rule: %v", err)
		}
		if !c.Expiry.After(now.Add(-leeway)) || c.IssuedAt.After(now.Add(leeway)) || c.Expiry.Sub(c.IssuedAt) > maxLife {
			t.Fatalf("accepted iat %s exp %s at %s", c.IssuedAt, c.Expiry, now)
		}
		// ...and are what the signed payload says.
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatalf("accepted a payload that is not a JSON object: %v", err)
		}
		if s, _ := m["userId"].(string); s != c.UserID {
			t.Fatalf("userId %q, payload says %q", c.UserID, s)
		}
		if s, _ := m["anonymousId"].(string); s != c.AnonymousID {
			t.Fatalf("anonymousId %q, payload says %q", c.AnonymousID, s)
		}
		if b, _ := m["crossBorder"].(bool); b != c.CrossBorder {
			t.Fatalf("crossBorder %v, payload says %v", c.CrossBorder, m["crossBorder"])
		}
		if b, _ := m["guardianConsent"].(bool); b != c.GuardianConsent {
			t.Fatalf("guardianConsent %v, payload says %v", c.GuardianConsent, m["guardianConsent"])
		}
		if b, ok := m["minor"].(bool); ok != (c.Minor != nil) || ok && b != *c.Minor {
			t.Fatalf("minor %v, payload says %v", c.Minor, m["minor"])
		}
		if got := fmt.Sprint(c.Purposes); got != fmt.Sprint(m["purposes"]) && !(len(c.Purposes) == 0 && m["purposes"] == nil) {
			t.Fatalf("purposes %s, payload says %v", got, m["purposes"])
		}
		if nbf, ok := m["nbf"].(float64); ok && time.Unix(int64(nbf), 0).After(now.Add(leeway)) {
			t.Fatalf("accepted nbf %v at %s", nbf, now)
		}
	})
}

// checkRefusal checks a refusal: an *Error with a known reason whose
// message holds neither a secret, nor the token, nor the subject's ids.
func checkRefusal(t *testing.T, token string, err error) {
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is a %T, want *Error", err, err)
	}
	if !slices.Contains(reasons, e.Reason) {
		t.Fatalf("unknown reason %q", e.Reason)
	}
	if !strings.HasPrefix(e.Msg, "consent token: ") || e.Error() != e.Msg {
		t.Fatalf("message %q", e.Msg)
	}
	msg := e.Msg
	hidden := []string{string(key1.Secret), string(key2.Secret), token}
	parts := strings.Split(token, ".")
	if len(parts) == 3 {
		// The kid and alg are echoed by design (when short and printable),
		// even when a token copies an identifier into them.
		if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err == nil {
			var header map[string]any
			_ = json.Unmarshal(b, &header)
			for _, name := range []string{"kid", "alg"} {
				if s, ok := header[name].(string); ok {
					msg = strings.ReplaceAll(msg, strconv.Quote(s), "")
				}
			}
		}
		// The identifiers the payload holds, if it decodes at all, as
		// strings or numbers.
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var m map[string]json.RawMessage
			if json.Unmarshal(b, &m) == nil {
				for _, name := range []string{"userId", "anonymousId"} {
					var s string
					if json.Unmarshal(m[name], &s) != nil {
						s = string(m[name])
					}
					hidden = append(hidden, s)
				}
			}
		}
	}
	for _, h := range hidden {
		// Short strings, and the fixed text of messages, may occur by
		// chance.
		if len(h) >= 16 && !strings.Contains(staticText, h) && strings.Contains(msg, h) {
			t.Fatalf("message %q shows %q", e.Msg, h)
		}
	}
}

// staticText is the fixed wording of messages.
const staticText = "consent token: parts, want header.payload.signature is not canonical unpadded base64url " +
	"no kid header (want the id of the signing key) header is not a valid JWS header " +
	"(want analytics, personalization, marketing, third_party_sharing) userId or anonymousId is required " +
	"claims are not a JSON object with distinct names a NumericDate (seconds since 1970) an array of strings " +
	"header has an unsupported crit parameter signature does not match key id payload is not JSON"
