package consenttoken

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/consentflow/consentflow/internal/event"
)

const (
	// MaxTokenBytes bounds a token; a longer one is refused before parsing.
	MaxTokenBytes = 4096
	// MaxIDBytes bounds userId and anonymousId, as in events.
	MaxIDBytes = event.MaxIDBytes
	// MinSecretBytes is the shortest key secret: HS256 needs 256 bits.
	MinSecretBytes = 32
	// MaxKeyIDBytes bounds a key id, which is 1 to 64 printable ASCII
	// characters (no space).
	MaxKeyIDBytes = 64
)

// Reasons a token is refused: a bounded set, usable as a metric label.
const (
	// ReasonMalformed: not a compact JWS of the accepted form (encoding,
	// length, header JSON, alg other than HS256, no kid, payload not JSON).
	ReasonMalformed = "malformed"
	// ReasonUnknownKey: the kid header names no configured key.
	ReasonUnknownKey = "unknown_key"
	// ReasonBadSignature: the signature does not match the key kid names.
	ReasonBadSignature = "bad_signature"
	// ReasonExpired: exp is not after now minus the leeway.
	ReasonExpired = "expired"
	// ReasonNotYetValid: iat (or nbf) is after now plus the leeway.
	ReasonNotYetValid = "not_yet_valid"
	// ReasonTooLongLived: exp is more than the maximum lifetime after iat.
	ReasonTooLongLived = "too_long_lived"
	// ReasonInvalidClaims: a signed token whose claims break the contract
	// (no subject, unknown purpose, missing iat or exp, wrong JSON type...).
	ReasonInvalidClaims = "invalid_claims"
)

// Error is why Verify refused a token. Msg names what is wrong but never
// holds the token, a secret or the subject's identifiers; it does not wrap
// the JOSE library's errors, whose text may quote parts of the token.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Msg is the whole message, starting "consent token: ".
	Msg string
}

// Error returns the message.
func (e *Error) Error() string { return e.Msg }

func fail(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Msg: "consent token: " + fmt.Sprintf(format, args...)}
}

// Claims is what a consent token says about its subject.
type Claims struct {
	// UserID ("userId") and AnonymousID ("anonymousId") name the subject;
	// at least one is set, each at most MaxIDBytes.
	UserID      string
	AnonymousID string
	// Purposes ("purposes") are the purposes the backend vouches are
	// granted, each one of event.Purposes, without duplicates.
	Purposes []string
	// CrossBorder ("crossBorder") consents to transfer out of the home
	// region.
	CrossBorder bool
	// GuardianConsent ("guardianConsent") is a guardian's consent for a
	// minor.
	GuardianConsent bool
	// Minor ("minor") is nil when the token says nothing about minor
	// status; false vouches that the subject is not a minor, which may clear
	// the flag.
	Minor *bool
	// IssuedAt ("iat") and Expiry ("exp") are whole seconds, in UTC.
	IssuedAt time.Time
	Expiry   time.Time
	// KeyID is the id of the key that signed the token: Verify sets it
	// from the kid header, Sign ignores it.
	KeyID string
}

// wireClaims is the JSON form of Claims, for Sign.
type wireClaims struct {
	UserID          string           `json:"userId,omitempty"`
	AnonymousID     string           `json:"anonymousId,omitempty"`
	Purposes        []string         `json:"purposes,omitempty"`
	CrossBorder     bool             `json:"crossBorder,omitempty"`
	GuardianConsent bool             `json:"guardianConsent,omitempty"`
	Minor           *bool            `json:"minor,omitempty"`
	IssuedAt        *jwt.NumericDate `json:"iat,omitempty"`
	Expiry          *jwt.NumericDate `json:"exp,omitempty"`
}

// validate checks the claims that do not depend on the time of use.
func (c Claims) validate() *Error {
	if c.UserID == "" && c.AnonymousID == "" {
		return fail(ReasonInvalidClaims, "userId or anonymousId is required")
	}
	for _, f := range []struct{ name, value string }{{"userId", c.UserID}, {"anonymousId", c.AnonymousID}} {
		if len(f.value) > MaxIDBytes {
			return fail(ReasonInvalidClaims, "%s: %d bytes, more than %d", f.name, len(f.value), MaxIDBytes)
		}
	}
	for i, p := range c.Purposes {
		if !slices.Contains(event.Purposes, p) {
			return fail(ReasonInvalidClaims, "purposes: unknown purpose %s (want %s)", shown(p), strings.Join(event.Purposes, ", "))
		}
		if slices.Contains(c.Purposes[:i], p) {
			return fail(ReasonInvalidClaims, "purposes: %q listed twice", p)
		}
	}
	if c.IssuedAt.IsZero() {
		return fail(ReasonInvalidClaims, "iat is required")
	}
	if c.Expiry.IsZero() {
		return fail(ReasonInvalidClaims, "exp is required")
	}
	if !c.Expiry.After(c.IssuedAt) {
		return fail(ReasonInvalidClaims, "exp %s is not after iat %s", stamp(c.Expiry), stamp(c.IssuedAt))
	}
	return nil
}

// Key is a secret that signs tokens and the id that names it in their kid
// header.
type Key struct {
	// ID is 1 to MaxKeyIDBytes printable ASCII characters, no space.
	ID string
	// Secret is the HMAC key, at least MinSecretBytes.
	Secret []byte
}

func checkKeyID(id string) error {
	if id == "" {
		return errors.New("key id is required")
	}
	if !printable(id) {
		return fmt.Errorf("key id must be 1-%d printable ASCII characters without spaces", MaxKeyIDBytes)
	}
	return nil
}

func checkSecret(id string, secret []byte) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("secret of key %q is %d bytes, want at least %d", id, len(secret), MinSecretBytes)
	}
	return nil
}

// Verifier checks consent tokens against a set of keys. It is safe for
// concurrent use.
type Verifier struct {
	keys        map[string][]byte
	maxLifetime time.Duration
	leeway      time.Duration
}

// NewVerifier returns a Verifier for tokens signed with any of keys (more
// than one during a rotation), living at most maxLifetime from iat to exp,
// with leeway allowed for clock skew between issuer and verifier. Key ids
// must be distinct, and so must secrets: a token must name its one key.
func NewVerifier(keys []Key, maxLifetime, leeway time.Duration) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("consent token verifier: no key")
	}
	if maxLifetime <= 0 {
		return nil, fmt.Errorf("consent token verifier: max lifetime %s must be positive", maxLifetime)
	}
	if leeway < 0 {
		return nil, fmt.Errorf("consent token verifier: leeway %s must not be negative", leeway)
	}
	v := &Verifier{keys: make(map[string][]byte, len(keys)), maxLifetime: maxLifetime, leeway: leeway}
	for i, k := range keys {
		if err := checkKeyID(k.ID); err != nil {
			return nil, fmt.Errorf("consent token verifier: key %d: %w", i, err)
		}
		if _, dup := v.keys[k.ID]; dup {
			return nil, fmt.Errorf("consent token verifier: duplicate key id %q", k.ID)
		}
		if err := checkSecret(k.ID, k.Secret); err != nil {
			return nil, fmt.Errorf("consent token verifier: %w", err)
		}
		for _, prev := range keys[:i] {
			if sameSecret(prev.Secret, k.Secret) {
				return nil, fmt.Errorf("consent token verifier: keys %q and %q have the same secret", prev.ID, k.ID)
			}
		}
		v.keys[k.ID] = bytes.Clone(k.Secret)
	}
	return v, nil
}

func sameSecret(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// Verify checks token at time now and returns its claims. Every error is an
// *Error.
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	c, err := v.verify(token, now)
	if err != nil {
		return Claims{}, err
	}
	return c, nil
}

// verify returns *Error rather than error so that no nil *Error becomes a
// non-nil error.
func (v *Verifier) verify(token string, now time.Time) (Claims, *Error) {
	if err := checkEncoding(token); err != nil {
		return Claims{}, err
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		if algErr, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			if algErr.Got == "" {
				return Claims{}, fail(ReasonMalformed, "no alg header (want HS256)")
			}
			return Claims{}, fail(ReasonMalformed, "alg %s not accepted (want HS256)", shown(string(algErr.Got)))
		}
		return Claims{}, fail(ReasonMalformed, "header is not a valid JWS header")
	}
	if len(tok.Headers) != 1 {
		return Claims{}, fail(ReasonMalformed, "want one signature, got %d", len(tok.Headers))
	}
	kid := tok.Headers[0].KeyID
	if kid == "" {
		return Claims{}, fail(ReasonMalformed, "no kid header (want the id of the signing key)")
	}
	secret, ok := v.keys[kid]
	if !ok {
		return Claims{}, fail(ReasonUnknownKey, "signed with unknown key id %s", shown(kid))
	}
	// The signature first, alone, so that a forged token is reported as
	// such whatever its payload holds. go-jose compares MACs in constant
	// time.
	if err := tok.Claims(secret); err != nil {
		if errors.Is(err, jose.ErrCryptoFailure) {
			return Claims{}, fail(ReasonBadSignature, "signature does not match key id %q", kid)
		}
		return Claims{}, fail(ReasonMalformed, "header has an unsupported crit parameter")
	}
	var payload josejson.RawMessage
	if err := tok.Claims(secret, &payload); err != nil {
		return Claims{}, fail(ReasonMalformed, "payload is not JSON")
	}
	c, nbf, cerr := decodeClaims(payload)
	if cerr != nil {
		return Claims{}, cerr
	}
	if cerr := c.validate(); cerr != nil {
		return Claims{}, cerr
	}
	if life := c.Expiry.Sub(c.IssuedAt); life > v.maxLifetime {
		return Claims{}, fail(ReasonTooLongLived, "lives %s from iat %s to exp %s, more than the maximum %s",
			life, stamp(c.IssuedAt), stamp(c.Expiry), v.maxLifetime)
	}
	if !c.Expiry.After(now.Add(-v.leeway)) {
		return Claims{}, fail(ReasonExpired, "expired at %s", stamp(c.Expiry))
	}
	if c.IssuedAt.After(now.Add(v.leeway)) {
		return Claims{}, fail(ReasonNotYetValid, "issued at %s, later than now (%s) plus leeway %s", stamp(c.IssuedAt), stamp(now), v.leeway)
	}
	if !nbf.IsZero() && nbf.After(now.Add(v.leeway)) {
		return Claims{}, fail(ReasonNotYetValid, "not valid before %s, later than now (%s) plus leeway %s", stamp(nbf), stamp(now), v.leeway)
	}
	c.KeyID = kid
	return c, nil
}

// checkEncoding refuses what is not three canonical, unpadded base64url
// parts of at most MaxTokenBytes in all. Go's decoder would skip line
// breaks and ignore stray trailing bits, letting one token be spelt many
// ways.
func checkEncoding(token string) *Error {
	if token == "" {
		return fail(ReasonMalformed, "empty")
	}
	if len(token) > MaxTokenBytes {
		return fail(ReasonMalformed, "%d bytes, more than %d", len(token), MaxTokenBytes)
	}
	for i := range len(token) {
		if !isTokenByte(token[i]) {
			return fail(ReasonMalformed, "byte %d is not base64url or '.'", i)
		}
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fail(ReasonMalformed, "%d parts, want header.payload.signature", len(parts))
	}
	for i, part := range parts {
		if _, err := base64.RawURLEncoding.Strict().DecodeString(part); err != nil {
			return fail(ReasonMalformed, "%s is not canonical unpadded base64url", [...]string{"header", "payload", "signature"}[i])
		}
	}
	return nil
}

func isTokenByte(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
}

// decodeClaims reads the claims one by one, so that an error can name the
// claim without quoting its value (a numeric userId would otherwise appear
// in the JSON decoder's message). go-jose's decoder matches names case
// sensitively and refuses duplicate names. null is the same as absent.
func decodeClaims(payload []byte) (c Claims, nbf time.Time, _ *Error) {
	var members map[string]josejson.RawMessage
	if err := josejson.Unmarshal(payload, &members); err != nil || members == nil {
		return Claims{}, time.Time{}, fail(ReasonInvalidClaims, "claims are not a JSON object with distinct names")
	}
	var minor *bool
	var iat, exp, notBefore *jwt.NumericDate
	for _, f := range []struct {
		name string
		want string
		dst  any
	}{
		{"userId", "a string", &c.UserID},
		{"anonymousId", "a string", &c.AnonymousID},
		{"purposes", "an array of strings", &c.Purposes},
		{"crossBorder", "true or false", &c.CrossBorder},
		{"guardianConsent", "true or false", &c.GuardianConsent},
		{"minor", "true or false", &minor},
		{"iat", "a NumericDate (seconds since 1970)", &iat},
		{"exp", "a NumericDate (seconds since 1970)", &exp},
		{"nbf", "a NumericDate (seconds since 1970)", &notBefore},
	} {
		raw, ok := members[f.name]
		if !ok {
			continue
		}
		if err := josejson.Unmarshal(raw, f.dst); err != nil {
			return Claims{}, time.Time{}, fail(ReasonInvalidClaims, "claim %q: want %s", f.name, f.want)
		}
	}
	c.Minor = minor
	if iat != nil {
		c.IssuedAt = iat.Time().UTC()
	}
	if exp != nil {
		c.Expiry = exp.Time().UTC()
	}
	if notBefore != nil {
		nbf = notBefore.Time().UTC()
	}
	return c, nbf, nil
}

// Sign issues a token for c signed with key: compact JWS, alg HS256, with
// the kid and typ JWT headers. It is for tests, documentation and
// development tools. It does not check the claims, so that tests can issue
// tokens Verify refuses; zero IssuedAt or Expiry leave the claim out.
func Sign(key Key, c Claims) (string, error) {
	if err := checkKeyID(key.ID); err != nil {
		return "", fmt.Errorf("sign consent token: %w", err)
	}
	if err := checkSecret(key.ID, key.Secret); err != nil {
		return "", fmt.Errorf("sign consent token: %w", err)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", key.ID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key.Secret}, opts)
	if err != nil {
		return "", fmt.Errorf("sign consent token: %w", err)
	}
	token, err := jwt.Signed(signer).Claims(wireClaims{
		UserID:          c.UserID,
		AnonymousID:     c.AnonymousID,
		Purposes:        c.Purposes,
		CrossBorder:     c.CrossBorder,
		GuardianConsent: c.GuardianConsent,
		Minor:           c.Minor,
		IssuedAt:        jwt.NewNumericDate(c.IssuedAt),
		Expiry:          jwt.NewNumericDate(c.Expiry),
	}).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign consent token: %w", err)
	}
	return token, nil
}

// shown quotes s when it is a short printable string, and otherwise only
// says how long it is: values from a token are quoted in messages only when
// they cannot carry much.
func shown(s string) string {
	if printable(s) {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("(%d bytes, not shown)", len(s))
}

// printable reports whether s is 1 to MaxKeyIDBytes of printable ASCII
// without spaces.
func printable(s string) bool {
	if s == "" || len(s) > MaxKeyIDBytes {
		return false
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Format prints the key id and hides the secret from every fmt verb.
func (k Key) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "consenttoken.Key{ID: %q, Secret: [redacted]}", k.ID)
}

// Format prints the key ids and limits and hides the secrets from every fmt
// verb.
func (v *Verifier) Format(f fmt.State, _ rune) {
	if v == nil {
		_, _ = io.WriteString(f, "<nil>")
		return
	}
	ids := slices.Sorted(maps.Keys(v.keys))
	_, _ = fmt.Fprintf(f, "consenttoken.Verifier{keys: %q, maxLifetime: %s, leeway: %s}", ids, v.maxLifetime, v.leeway)
}
