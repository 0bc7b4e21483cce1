// Package consenttoken verifies signed consent tokens: short-lived JWTs with
// which a first party's backend vouches for consent grants that a public
// client source cannot make on its own (README, Trust model): consent for a
// subject other than the client's own anonymousId, cross-border transfer,
// guardian consent, and clearing the minor flag. A web page receives the
// token from its backend and passes it along in its consent update
// ("consentToken": "<jwt>" in POST /v1/consent); the collector verifies it
// with the keys in its config.
//
// # Data contract
//
// A token is a JWT in the JWS compact serialization, signed with HMAC-SHA256:
//
//	header:  {"alg":"HS256","kid":"<key id>","typ":"JWT"}
//	claims:  {
//	           "userId": "u-123",               // and/or "anonymousId"; at least one, each at most 1024 bytes
//	           "anonymousId": "a-456",
//	           "purposes": ["analytics", "marketing"], // granted purposes, each one of event.Purposes, no duplicates
//	           "crossBorder": true,             // consent to transfer out of the home region
//	           "guardianConsent": false,        // a guardian consents for a minor
//	           "minor": false,                  // optional: absent says nothing, false vouches the subject is not a minor
//	           "iat": 1796637600,               // required, NumericDate (seconds since the epoch)
//	           "exp": 1796641200                // required, after iat, at most max_lifetime after it
//	         }
//
// Only alg HS256 is accepted, and the "kid" header is required: it names the
// key that signed the token. "typ" is optional. The token is at most 4096
// bytes of base64url and dots, each part encoded canonically (no padding, no
// line breaks), so an accepted token has exactly one spelling. Other claims
// ("iss", "sub", "jti", "aud", ...) are ignored; "nbf" is honoured when
// present. The subject is "userId"/"anonymousId", never "sub". Absent,
// null, false and empty claims grant nothing.
//
// Verify accepts a token when its signature matches the key its kid names,
// exp is after now minus the leeway, iat (and nbf) is not after now plus the
// leeway, exp is after iat by at most the maximum lifetime, and the claims
// above hold. Otherwise it returns an *Error whose Reason is one of a fixed
// set (ReasonMalformed, ReasonUnknownKey, ReasonBadSignature, ReasonExpired,
// ReasonNotYetValid, ReasonTooLongLived, ReasonInvalidClaims) and whose
// message names the problem but never contains the token, a key's secret or
// the subject's identifiers.
//
// # Issuing a token
//
// A backend issues tokens with any JWT library: HS256 with the key's secret
// (its bytes exactly as configured: a hex string is used as its characters,
// not decoded), the kid header set to the key id, the claims above, iat set to
// the current time and exp a few minutes later (at most max_lifetime, 1h by
// default). With a typical library that is, in outline: build a token with
// signing method HS256 and the claims {"userId": ..., "purposes": [...],
// "crossBorder": true, "iat": now, "exp": now+5m}, set its header "kid" to
// "consent-2026a", and sign it with the secret. Sign does the same in Go, for
// tests and dev tools. Issue a token only after the backend has itself
// authenticated the subject and recorded the grant; anyone holding a token
// can present it until it expires.
//
// # Key rotation
//
// Keys have ids, like the pseudonym keys. To rotate: add the new key to the
// collector's consent_tokens.keys and deploy, switch the backend to sign with
// it, and remove the old key once max_lifetime (plus leeway) has passed, when
// no token signed with it can still be valid. Keys are given by key_file: a
// list is read from the config file only, not from the environment.
//
// # Metrics
//
// The package emits no metrics itself: the caller counts refusals by
// Error.Reason, a bounded set fit for a metric label.
package consenttoken
