package consenttoken

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/config"
)

var (
	key1 = Key{ID: "t1", Secret: []byte("0123456789abcdef0123456789abcdef-one")}
	key2 = Key{ID: "t2", Secret: []byte("0123456789abcdef0123456789abcdef-two")}
	// now is the verifier's clock in every test.
	now = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
)

const (
	testUserID = "user-7f3a9c2e"
	testAnonID = "anon-5b8d1e44"
	maxLife    = time.Hour
	leeway     = time.Minute
)

func ptr[T any](v T) *T { return &v }

// goodClaims grants everything a client cannot, issued a minute ago for five
// minutes.
func goodClaims() Claims {
	return Claims{
		UserID:          testUserID,
		AnonymousID:     testAnonID,
		Purposes:        []string{"analytics", "marketing"},
		CrossBorder:     true,
		GuardianConsent: true,
		Minor:           ptr(false),
		IssuedAt:        now.Add(-time.Minute),
		Expiry:          now.Add(4 * time.Minute),
	}
}

func newTestVerifier(t testing.TB) *Verifier {
	t.Helper()
	v, err := NewVerifier([]Key{key1, key2}, maxLife, leeway)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sign(t testing.TB, k Key, c Claims) string {
	t.Helper()
	token, err := Sign(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// handToken builds a token from a raw header and payload, MACed with secret
// under h (nil: an empty signature).
func handToken(header, payload string, h func() hash.Hash, secret []byte) string {
	input := b64(header) + "." + b64(payload)
	if h == nil {
		return input + "."
	}
	mac := hmac.New(h, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// goodPayload is goodClaims as JSON, with extra members appended.
func goodPayload(extra string) string {
	return fmt.Sprintf(`{"userId":%q,"purposes":["analytics"],"iat":%d,"exp":%d%s}`,
		testUserID, now.Add(-time.Minute).Unix(), now.Add(4*time.Minute).Unix(), extra)
}

const hs256t1 = `{"alg":"HS256","kid":"t1","typ":"JWT"}`

// wantReason checks that err is an *Error with reason and, when msg is not
// empty, that its message contains msg.
func wantReason(t *testing.T, err error, reason, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *Error with reason %s", err, err, reason)
	}
	if e.Reason != reason {
		t.Errorf("reason %q (%s), want %q", e.Reason, e.Msg, reason)
	}
	if msg != "" && !strings.Contains(e.Error(), msg) {
		t.Errorf("message %q, want it to contain %q", e.Error(), msg)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	v := newTestVerifier(t)
	want := goodClaims()
	token := sign(t, key1, want)
	got, err := v.Verify(token, now)
	if err != nil {
		t.Fatal(err)
	}
	want.KeyID = key1.ID
	if !reflect.DeepEqual(got, want) {
		t.Errorf("claims\n got %+v\nwant %+v", got, want)
	}
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if string(header) != hs256t1 {
		t.Errorf("header %s, want %s", header, hs256t1)
	}

	// Minor absent stays nil; true stays true.
	for _, minor := range []*bool{nil, ptr(true)} {
		c := goodClaims()
		c.Minor = minor
		got, err := v.Verify(sign(t, key1, c), now)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Minor, minor) {
			t.Errorf("minor %v, want %v", got.Minor, minor)
		}
	}
}

func TestHandBuiltTokenVerifies(t *testing.T) {
	// The hand builder is right, so the refusals of hand-built tokens below
	// are due to what they change. Unknown claims are ignored.
	v := newTestVerifier(t)
	token := handToken(hs256t1, goodPayload(`,"iss":"shop","sub":"x","jti":"j1","aud":["y"]`), sha256.New, key1.Secret)
	c, err := v.Verify(token, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != testUserID || c.AnonymousID != "" || !reflect.DeepEqual(c.Purposes, []string{"analytics"}) || c.Minor != nil {
		t.Errorf("claims %+v", c)
	}
	// No typ header is fine.
	if _, err := v.Verify(handToken(`{"alg":"HS256","kid":"t1"}`, goodPayload(""), sha256.New, key1.Secret), now); err != nil {
		t.Error(err)
	}
}

func TestRotation(t *testing.T) {
	v := newTestVerifier(t)
	for _, k := range []Key{key1, key2} {
		if _, err := v.Verify(sign(t, k, goodClaims()), now); err != nil {
			t.Errorf("token of %s: %v", k.ID, err)
		}
	}
	t9 := Key{ID: "t9", Secret: []byte("another secret, thirty-two bytes long!")}
	_, err := v.Verify(sign(t, t9, goodClaims()), now)
	wantReason(t, err, ReasonUnknownKey, `consent token: signed with unknown key id "t9"`)

	// Once the old key is dropped, its tokens are refused.
	newOnly, err := NewVerifier([]Key{key2}, maxLife, leeway)
	if err != nil {
		t.Fatal(err)
	}
	_, err = newOnly.Verify(sign(t, key1, goodClaims()), now)
	wantReason(t, err, ReasonUnknownKey, `"t1"`)
}

func TestTampered(t *testing.T) {
	v := newTestVerifier(t)
	token := sign(t, key1, goodClaims())
	parts := strings.Split(token, ".")

	c := goodClaims()
	c.Purposes = append(c.Purposes, "third_party_sharing")
	other := strings.Split(sign(t, key1, c), ".")

	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	for name, tok := range map[string]string{
		"payload":   parts[0] + "." + other[1] + "." + parts[2],
		"signature": parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig),
		"kid":       b64(`{"alg":"HS256","kid":"t2","typ":"JWT"}`) + "." + parts[1] + "." + parts[2],
		"truncated": parts[0] + "." + parts[1] + "." + parts[2][:20],
	} {
		_, err := v.Verify(tok, now)
		wantReason(t, err, ReasonBadSignature, "signature does not match")
		if err != nil && name == "kid" && !strings.Contains(err.Error(), `"t2"`) {
			t.Errorf("%s: %v does not name the key", name, err)
		}
	}
}

func TestWrongKeyRightKid(t *testing.T) {
	v := newTestVerifier(t)
	impostor := Key{ID: "t1", Secret: []byte("not the real secret, but long enough")}
	_, err := v.Verify(sign(t, impostor, goodClaims()), now)
	wantReason(t, err, ReasonBadSignature, `key id "t1"`)
}

func TestAlgorithmsRefused(t *testing.T) {
	v := newTestVerifier(t)
	payload := goodPayload("")
	for name, tc := range map[string]struct{ token, msg string }{
		"none":         {handToken(`{"alg":"none","kid":"t1","typ":"JWT"}`, payload, nil, nil), `alg "none" not accepted`},
		"none+sig":     {handToken(`{"alg":"none","kid":"t1"}`, payload, sha256.New, key1.Secret), `alg "none"`},
		"HS512":        {handToken(`{"alg":"HS512","kid":"t1","typ":"JWT"}`, payload, sha512.New, key1.Secret), `alg "HS512" not accepted (want HS256)`},
		"HS384":        {handToken(`{"alg":"HS384","kid":"t1"}`, payload, sha512.New384, key1.Secret), `alg "HS384"`},
		"RS256":        {handToken(`{"alg":"RS256","kid":"t1","typ":"JWT"}`, payload, sha256.New, key1.Secret), `alg "RS256"`},
		"lowercase":    {handToken(`{"alg":"hs256","kid":"t1"}`, payload, sha256.New, key1.Secret), `alg "hs256"`},
		"no alg":       {handToken(`{"kid":"t1","typ":"JWT"}`, payload, sha256.New, key1.Secret), "no alg header"},
		"alg not text": {handToken(`{"alg":256,"kid":"t1"}`, payload, sha256.New, key1.Secret), ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(tc.token, now)
			wantReason(t, err, ReasonMalformed, tc.msg)
		})
	}
}

func TestCriticalHeader(t *testing.T) {
	// A signed token whose crit header names an extension the verifier
	// does not implement is malformed, not forged.
	v := newTestVerifier(t)
	for _, header := range []string{
		`{"alg":"HS256","kid":"t1","crit":["exp"],"exp":1}`,
		`{"alg":"HS256","kid":"t1","crit":"b64"}`,
	} {
		_, err := v.Verify(handToken(header, goodPayload(""), sha256.New, key1.Secret), now)
		wantReason(t, err, ReasonMalformed, "crit")
	}
}

func TestMissingKid(t *testing.T) {
	v := newTestVerifier(t)
	for _, header := range []string{`{"alg":"HS256","typ":"JWT"}`, `{"alg":"HS256","kid":""}`} {
		_, err := v.Verify(handToken(header, goodPayload(""), sha256.New, key1.Secret), now)
		wantReason(t, err, ReasonMalformed, "no kid header")
	}
	_, err := v.Verify(handToken(`{"alg":"HS256","kid":7}`, goodPayload(""), sha256.New, key1.Secret), now)
	wantReason(t, err, ReasonMalformed, "")
}

func TestTimes(t *testing.T) {
	v := newTestVerifier(t)
	at := func(iat, exp time.Duration) Claims {
		c := goodClaims()
		c.IssuedAt, c.Expiry = now.Add(iat), now.Add(exp)
		return c
	}
	for name, tc := range map[string]struct {
		c      Claims
		reason string // empty: accepted
		msg    string
	}{
		"expired":                 {at(-10*time.Minute, -leeway-time.Second), ReasonExpired, "consent token: expired at 2026-12-07T09:58:59Z"},
		"expired at leeway":       {at(-10*time.Minute, -leeway), ReasonExpired, "expired at"},
		"expired within leeway":   {at(-10*time.Minute, -leeway+time.Second), "", ""},
		"issued in the future":    {at(leeway+time.Second, 10*time.Minute), ReasonNotYetValid, "issued at 2026-12-07T10:01:01Z"},
		"issued within leeway":    {at(leeway, 10*time.Minute), "", ""},
		"lifetime over max":       {at(-time.Minute, maxLife-time.Minute+time.Second), ReasonTooLongLived, "more than the maximum 1h0m0s"},
		"lifetime max":            {at(-time.Minute, maxLife-time.Minute), "", ""},
		"exp before iat":          {at(30*time.Second, 10*time.Second), ReasonInvalidClaims, "consent token: exp 2026-12-07T10:00:10Z is not after iat 2026-12-07T10:00:30Z"},
		"exp equals iat":          {at(time.Second, time.Second), ReasonInvalidClaims, "is not after iat"},
		"no iat":                  {Claims{UserID: testUserID, Expiry: now.Add(time.Minute)}, ReasonInvalidClaims, "consent token: iat is required"},
		"no exp":                  {Claims{UserID: testUserID, IssuedAt: now}, ReasonInvalidClaims, "consent token: exp is required"},
		"very long-lived expired": {at(-1000*time.Hour, -10*time.Hour), ReasonTooLongLived, ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(sign(t, key1, tc.c), now)
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantReason(t, err, tc.reason, tc.msg)
		})
	}
}

func TestNotBefore(t *testing.T) {
	v := newTestVerifier(t)
	future := handToken(hs256t1, goodPayload(fmt.Sprintf(`,"nbf":%d`, now.Add(leeway+time.Second).Unix())), sha256.New, key1.Secret)
	_, err := v.Verify(future, now)
	wantReason(t, err, ReasonNotYetValid, "not valid before 2026-12-07T10:01:01Z")
	past := handToken(hs256t1, goodPayload(fmt.Sprintf(`,"nbf":%d`, now.Add(leeway).Unix())), sha256.New, key1.Secret)
	if _, err := v.Verify(past, now); err != nil {
		t.Error(err)
	}
}

func TestInvalidClaims(t *testing.T) {
	v := newTestVerifier(t)
	long := strings.Repeat("x", MaxIDBytes+1)
	with := func(f func(*Claims)) Claims {
		c := goodClaims()
		f(&c)
		return c
	}
	for name, tc := range map[string]struct {
		c   Claims
		msg string
	}{
		"no subject":        {with(func(c *Claims) { c.UserID, c.AnonymousID = "", "" }), "consent token: userId or anonymousId is required"},
		"unknown purpose":   {with(func(c *Claims) { c.Purposes = []string{"analytics", "ads"} }), `consent token: purposes: unknown purpose "ads" (want analytics, personalization, marketing, third_party_sharing)`},
		"empty purpose":     {with(func(c *Claims) { c.Purposes = []string{""} }), "unknown purpose"},
		"duplicate purpose": {with(func(c *Claims) { c.Purposes = []string{"marketing", "analytics", "marketing"} }), `consent token: purposes: "marketing" listed twice`},
		"long userId":       {with(func(c *Claims) { c.UserID = long }), "consent token: userId: 1025 bytes, more than 1024"},
		"long anonymousId":  {with(func(c *Claims) { c.AnonymousID = long }), "consent token: anonymousId: 1025 bytes, more than 1024"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(sign(t, key1, tc.c), now)
			wantReason(t, err, ReasonInvalidClaims, tc.msg)
		})
	}

	// Either identifier alone, each at the limit, is enough.
	for _, c := range []Claims{
		with(func(c *Claims) { c.UserID = "" }),
		with(func(c *Claims) { c.AnonymousID = "" }),
		with(func(c *Claims) { c.UserID, c.AnonymousID = long[1:], long[1:] }),
		with(func(c *Claims) { c.Purposes = nil }),
	} {
		if _, err := v.Verify(sign(t, key1, c), now); err != nil {
			t.Error(err)
		}
	}
}

func TestClaimsJSON(t *testing.T) {
	v := newTestVerifier(t)
	iat, exp := now.Add(-time.Minute).Unix(), now.Add(time.Minute).Unix()
	for name, tc := range map[string]struct {
		payload, reason, msg string
	}{
		"not JSON":                 {`userId=1`, ReasonMalformed, "payload is not JSON"},
		"array":                    {`["userId"]`, ReasonInvalidClaims, "not a JSON object"},
		"null":                     {`null`, ReasonInvalidClaims, "not a JSON object"},
		"duplicate name":           {fmt.Sprintf(`{"userId":"a","minor":true,"minor":false,"iat":%d,"exp":%d}`, iat, exp), ReasonInvalidClaims, "distinct names"},
		"userId number":            {fmt.Sprintf(`{"userId":918273645,"iat":%d,"exp":%d}`, iat, exp), ReasonInvalidClaims, `claim "userId": want a string`},
		"purposes string":          {fmt.Sprintf(`{"userId":"a","purposes":"analytics","iat":%d,"exp":%d}`, iat, exp), ReasonInvalidClaims, `claim "purposes": want an array of strings`},
		"crossBorder text":         {fmt.Sprintf(`{"userId":"a","crossBorder":"true","iat":%d,"exp":%d}`, iat, exp), ReasonInvalidClaims, `claim "crossBorder"`},
		"minor number":             {fmt.Sprintf(`{"userId":"a","minor":0,"iat":%d,"exp":%d}`, iat, exp), ReasonInvalidClaims, `claim "minor"`},
		"exp text":                 {fmt.Sprintf(`{"userId":"a","iat":%d,"exp":"%d"}`, iat, exp), ReasonInvalidClaims, `claim "exp"`},
		"exp huge":                 {fmt.Sprintf(`{"userId":"a","iat":%d,"exp":1e300}`, iat), ReasonInvalidClaims, `claim "exp"`},
		"exp null":                 {fmt.Sprintf(`{"userId":"a","iat":%d,"exp":null}`, iat), ReasonInvalidClaims, "exp is required"},
		"names are case sensitive": {fmt.Sprintf(`{"UserId":"a","iat":%d,"exp":%d}`, iat, exp), ReasonInvalidClaims, "userId or anonymousId is required"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(handToken(hs256t1, tc.payload, sha256.New, key1.Secret), now)
			wantReason(t, err, tc.reason, tc.msg)
		})
	}
}

func TestEncoding(t *testing.T) {
	v := newTestVerifier(t)
	token := sign(t, key1, goodClaims())
	parts := strings.Split(token, ".")
	// A 32-byte MAC is 43 characters whose last carries 2 unused bits:
	// flipping them changes the spelling, not the bytes.
	last := parts[2][len(parts[2])-1]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sibling := alphabet[strings.IndexByte(alphabet, last)^1]
	for name, tc := range map[string]struct{ token, msg string }{
		"empty":           {"", "consent token: empty"},
		"two parts":       {parts[0] + "." + parts[1], "2 parts"},
		"four parts":      {token + ".", "4 parts"},
		"padding":         {token + "=", "is not base64url"},
		"line break":      {parts[0] + ".\n" + parts[1] + "." + parts[2], "byte"},
		"space":           {" " + token, "byte 0"},
		"std base64":      {parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+/", "is not base64url"},
		"trailing bits":   {parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + string(sibling), "signature is not canonical"},
		"bad length":      {parts[0] + "." + parts[1] + "." + parts[2] + "AA", "signature is not canonical"},
		"JSON JWS":        {`{"payload":"` + parts[1] + `"}`, "is not base64url"},
		"header not JSON": {b64("alg=HS256") + "." + parts[1] + "." + parts[2], "header"},
		"too long":        {parts[0] + "." + parts[1] + strings.Repeat("A", MaxTokenBytes) + "." + parts[2], "more than 4096"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(tc.token, now)
			wantReason(t, err, ReasonMalformed, tc.msg)
		})
	}
}

func TestTokenLength(t *testing.T) {
	v := newTestVerifier(t)
	// A good token padded with an ignored claim to exactly the limit is
	// accepted, and one byte more is refused before parsing.
	tokenWith := func(pad int) string {
		return handToken(hs256t1, goodPayload(`,"jti":"`+strings.Repeat("j", pad)+`"`), sha256.New, key1.Secret)
	}
	// base64 grows by one or two characters a byte: the longest token
	// within the limit is 4095 or 4096 bytes.
	pad := 0
	for len(tokenWith(pad+1)) <= MaxTokenBytes {
		pad++
	}
	if _, err := v.Verify(tokenWith(pad), now); err != nil {
		t.Fatalf("%d bytes: %v", len(tokenWith(pad)), err)
	}
	_, err := v.Verify(tokenWith(pad+1), now)
	wantReason(t, err, ReasonMalformed, fmt.Sprintf("consent token: %d bytes, more than 4096", len(tokenWith(pad+1))))
}

func TestMessagesHideSecretsAndSubjects(t *testing.T) {
	v := newTestVerifier(t)
	good := sign(t, key1, goodClaims())
	parts := strings.Split(good, ".")
	numericID := handToken(hs256t1, fmt.Sprintf(`{"userId":918273645,"iat":%d,"exp":%d}`, now.Unix(), now.Add(time.Minute).Unix()), sha256.New, key1.Secret)
	// A subject id in the kid, alg or purpose must not be echoed either.
	idAsKid := handToken(`{"alg":"HS256","kid":"`+testUserID+strings.Repeat("-", MaxKeyIDBytes)+`"}`, goodPayload(""), sha256.New, key1.Secret)
	idAsAlg := handToken(`{"alg":"`+testUserID+strings.Repeat("-", MaxKeyIDBytes)+`","kid":"t1"}`, goodPayload(""), sha256.New, key1.Secret)
	idAsPurpose := handToken(hs256t1, fmt.Sprintf(`{"userId":%q,"purposes":["%s"],"iat":%d,"exp":%d}`,
		testUserID, testAnonID+strings.Repeat("-", MaxKeyIDBytes), now.Unix(), now.Add(time.Minute).Unix()), sha256.New, key1.Secret)
	expired := goodClaims()
	expired.Expiry = now.Add(-time.Hour)
	expired.IssuedAt = now.Add(-2 * time.Hour)
	tokens := []string{
		sign(t, Key{ID: "t1", Secret: []byte("wrong secret but long enough, yes it is")}, goodClaims()),
		sign(t, Key{ID: "t9", Secret: key2.Secret}, goodClaims()),
		sign(t, key1, expired),
		parts[0] + "." + parts[1] + "x." + parts[2],
		good + "=",
		numericID, idAsKid, idAsAlg, idAsPurpose,
	}
	for _, tok := range tokens {
		_, err := v.Verify(tok, now)
		if err == nil {
			t.Fatalf("token accepted: %s", tok)
		}
		msg := err.Error()
		for _, secret := range []string{string(key1.Secret), string(key2.Secret), tok, parts[1], parts[2], testUserID, testAnonID, "918273645"} {
			if strings.Contains(msg, secret) {
				t.Errorf("message %q contains %q", msg, secret)
			}
		}
	}
}

func TestNewVerifier(t *testing.T) {
	short := Key{ID: "s", Secret: bytes.Repeat([]byte("s"), 31)}
	for name, tc := range map[string]struct {
		keys        []Key
		life, leewy time.Duration
		msg         string
	}{
		"no key":          {nil, maxLife, leeway, "no key"},
		"empty id":        {[]Key{{Secret: key1.Secret}}, maxLife, leeway, "key id is required"},
		"id with space":   {[]Key{{ID: "t 1", Secret: key1.Secret}}, maxLife, leeway, "printable"},
		"long id":         {[]Key{{ID: strings.Repeat("k", MaxKeyIDBytes+1), Secret: key1.Secret}}, maxLife, leeway, "printable"},
		"duplicate id":    {[]Key{key1, {ID: "t1", Secret: key2.Secret}}, maxLife, leeway, `duplicate key id "t1"`},
		"short secret":    {[]Key{short}, maxLife, leeway, "31 bytes, want at least 32"},
		"same secret":     {[]Key{key1, {ID: "t3", Secret: key1.Secret}}, maxLife, leeway, `keys "t1" and "t3" have the same secret`},
		"zero lifetime":   {[]Key{key1}, 0, leeway, "max lifetime 0s must be positive"},
		"negative leeway": {[]Key{key1}, maxLife, -time.Second, "leeway -1s must not be negative"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewVerifier(tc.keys, tc.life, tc.leewy)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), string(key1.Secret)) {
				t.Errorf("error %v shows a secret", err)
			}
		})
	}
	// Zero leeway is allowed, and the verifier keeps its own copy of the
	// secrets.
	k := Key{ID: "c", Secret: []byte(string(key1.Secret))}
	v, err := NewVerifier([]Key{k}, maxLife, 0)
	if err != nil {
		t.Fatal(err)
	}
	token := sign(t, k, goodClaims())
	k.Secret[0] ^= 1
	if _, err := v.Verify(token, now); err != nil {
		t.Error(err)
	}
}

func TestSignChecksKey(t *testing.T) {
	if _, err := Sign(Key{ID: "t1", Secret: []byte("short")}, goodClaims()); err == nil || !strings.Contains(err.Error(), "want at least 32") {
		t.Errorf("short secret: %v", err)
	}
	if _, err := Sign(Key{Secret: key1.Secret}, goodClaims()); err == nil {
		t.Error("no key id: no error")
	}
}

func TestFormatHidesSecrets(t *testing.T) {
	v := newTestVerifier(t)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, x := range []any{key1, &key1, v, []Key{key1}} {
			if s := fmt.Sprintf(verb, x); strings.Contains(s, string(key1.Secret)) || strings.Contains(s, fmt.Sprintf("%x", key1.Secret[:8])) {
				t.Errorf("%s of %T shows the secret: %s", verb, x, s)
			}
		}
	}
	if s := fmt.Sprint(v); !strings.Contains(s, `["t1" "t2"]`) {
		t.Errorf("verifier prints as %s, want its key ids", s)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigResolve(t *testing.T) {
	f1 := writeFile(t, "t1.key", string(key1.Secret)+"\n")
	f2 := writeFile(t, "t2.key", string(key2.Secret))
	c := Default()
	c.Keys = []KeyConfig{{KeyID: "t1", KeyFile: f1}, {KeyID: "t2", KeyFile: f2}}
	if err := c.Resolve("consent_tokens"); err != nil {
		t.Fatal(err)
	}
	if c.Keys[0].Key.Reveal() != string(key1.Secret) {
		t.Errorf("key read as %q", c.Keys[0].Key.Reveal())
	}
	v, err := c.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Key{key1, key2} {
		if _, err := v.Verify(sign(t, k, goodClaims()), now); err != nil {
			t.Errorf("token of %s: %v", k.ID, err)
		}
	}
	if strings.Contains(fmt.Sprintf("%v %+v %#v", c, c, c), string(key1.Secret)) {
		t.Error("config prints a secret")
	}

	off := Default()
	if err := off.Resolve("consent_tokens"); err != nil {
		t.Fatal(err)
	}
	if v, err := off.Verifier(); v != nil || err != nil {
		t.Errorf("no keys: verifier %v, error %v; want nil, nil", v, err)
	}
	if d := Default(); d.MaxLifetime != time.Hour || d.Leeway != time.Minute {
		t.Errorf("defaults %+v", d)
	}
}

func TestConfigResolveErrors(t *testing.T) {
	f1 := writeFile(t, "t1.key", string(key1.Secret))
	f1copy := writeFile(t, "copy.key", string(key1.Secret)+"\r\n")
	fshort := writeFile(t, "short.key", "too short\n")
	missing := filepath.Join(t.TempDir(), "missing.key")
	for name, tc := range map[string]struct {
		edit func(*Config)
		key  string
		msg  string
	}{
		"duplicate id": {func(c *Config) {
			c.Keys = []KeyConfig{{KeyID: "t1", KeyFile: f1}, {KeyID: "t1", Key: config.Secret(key2.Secret)}}
		}, "consent_tokens.keys[1].key_id", `consent_tokens.keys[1].key_id: duplicate key id "t1"`},
		"no id": {func(c *Config) { c.Keys = []KeyConfig{{KeyFile: f1}} },
			"consent_tokens.keys[0].key_id", "key id is required"},
		"id with space": {func(c *Config) { c.Keys = []KeyConfig{{KeyID: "key one", KeyFile: f1}} },
			"consent_tokens.keys[0].key_id", "printable"},
		"no key": {func(c *Config) { c.Keys = []KeyConfig{{KeyID: "t1"}} },
			"consent_tokens.keys[0].key", "consent_tokens.keys[0].key: is required"},
		"key and file": {func(c *Config) {
			c.Keys = []KeyConfig{{KeyID: "t1", Key: config.Secret("not-" + string(key1.Secret)), KeyFile: f1}}
		},
			"consent_tokens.keys[0].key", "not both"},
		"missing file": {func(c *Config) { c.Keys = []KeyConfig{{KeyID: "t1", KeyFile: missing}} },
			"consent_tokens.keys[0].key_file", "read secret file"},
		"short key": {func(c *Config) { c.Keys = []KeyConfig{{KeyID: "t1", KeyFile: fshort}} },
			"consent_tokens.keys[0].key", "is 9 bytes, want at least 32"},
		"same secret": {func(c *Config) {
			c.Keys = []KeyConfig{{KeyID: "t1", KeyFile: f1}, {KeyID: "t2", KeyFile: f1copy}}
		}, "consent_tokens.keys[1].key", "same secret as consent_tokens.keys[0]"},
		"zero lifetime": {func(c *Config) { c.MaxLifetime = 0 },
			"consent_tokens.max_lifetime", "consent_tokens.max_lifetime: must be positive"},
		"negative leeway": {func(c *Config) { c.Leeway = -time.Second },
			"consent_tokens.leeway", "consent_tokens.leeway: must not be negative"},
	} {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			err := c.Resolve("consent_tokens")
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T), want a *config.FieldError", err, err)
			}
			if fe.Key != tc.key {
				t.Errorf("key %q, want %q (%v)", fe.Key, tc.key, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want it to contain %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), string(key1.Secret)) || strings.Contains(err.Error(), string(key2.Secret)) {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}

	// Every problem is reported at once.
	c := Config{Keys: []KeyConfig{{KeyFile: fshort}}, Leeway: -1}
	err := c.Resolve("consent_tokens")
	for _, key := range []string{"keys[0].key_id", "keys[0].key:", "max_lifetime", "leeway"} {
		if err == nil || !strings.Contains(err.Error(), "consent_tokens."+key) {
			t.Errorf("error %v does not name consent_tokens.%s", err, key)
		}
	}
}

// TestWireNames pins the JSON claim names that backends write.
func TestWireNames(t *testing.T) {
	token := sign(t, key1, goodClaims())
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"userId": testUserID, "anonymousId": testAnonID,
		"purposes": []any{"analytics", "marketing"}, "crossBorder": true,
		"guardianConsent": true, "minor": false,
		"iat": float64(now.Add(-time.Minute).Unix()), "exp": float64(now.Add(4 * time.Minute).Unix()),
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("payload %s, want %v", payload, want)
	}
}
