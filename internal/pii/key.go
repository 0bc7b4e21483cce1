package pii

// keyPhrases are the names whose keys hold PI, as their words joined
// without separators in lower case ("push token" is "pushtoken"), with the
// kind of PI each implies. A key matches by whole words only, so "ip" is in
// "client_ip" and "IPAddress" but not in "tip", "zip" or "ship_to_city".
// Words that add nothing to a name (address, number, hash...: suffixWords)
// are left off when a phrase ends before them, so "phone" covers
// "phone_number" and "email" covers "email_address"; only the phrases they
// complete ("id number", "card number") are listed with one.
var keyPhrases = map[string]Kind{
	"email": Email, "emails": Email, "mailaddress": Email,

	"phone": Phone, "phones": Phone, "mobile": Phone, "tel": Phone, "telephone": Phone,
	"cellphone": Phone, "msisdn": Phone, "fax": Phone, "contactnumber": Phone,

	"ip": IPv4, "ips": IPv4, "ipv4": IPv4, "remoteaddr": IPv4, "forwardedfor": IPv4,
	"ipv6": IPv6,

	"mac": MAC, "bssid": MAC,

	"idfa": DeviceID, "idfv": DeviceID, "gaid": DeviceID, "aaid": DeviceID, "oaid": DeviceID,
	"advertisingid": DeviceID, "androidid": DeviceID, "deviceid": DeviceID, "udid": DeviceID,
	"imsi": DeviceID, "iccid": DeviceID,

	"imei": IMEI, "meid": IMEI,

	"pushtoken": PushToken, "devicetoken": PushToken, "fcmtoken": PushToken, "apnstoken": PushToken,
	"gcmtoken": PushToken, "registrationtoken": PushToken, "registrationid": PushToken,

	// A postal address locates a person as well as coordinates do.
	"lat": Location, "latitude": Location, "lng": Location, "lon": Location, "long": Location,
	"longitude": Location, "latlng": Location, "latlon": Location, "latlong": Location,
	"geo": Location, "gps": Location, "location": Location, "geolocation": Location,
	"geopoint": Location, "coordinates": Location, "coords": Location, "address": Location,
	"addr": Location, "addresses": Location, "addressline": Location, "addrline": Location,

	"idnumber": IDNumber, "idno": IDNumber, "idcard": IDNumber, "identitycard": IDNumber,
	"identitynumber": IDNumber, "passport": IDNumber, "nationalid": IDNumber, "residentid": IDNumber,
	"citizenid": IDNumber, "ssn": IDNumber, "socialsecurity": IDNumber, "taxid": IDNumber,
	"driverlicense": IDNumber, "driverslicense": IDNumber, "drivinglicence": IDNumber,
	"drivinglicense": IDNumber, "driverslicence": IDNumber,

	"cardnumber": Card, "cardno": Card, "cardnum": Card, "cardnr": Card, "creditcard": Card,
	"debitcard": Card, "bankcard": Card, "ccnumber": Card, "ccn": Card,
}

// maxPhraseWords is the most words of a key that one phrase spans.
const maxPhraseWords = 4

// suffixWords may follow a phrase without changing what the value is:
// "email_hash" is a hashed address, personal still.
var suffixWords = map[string]bool{
	"address": true, "addr": true, "number": true, "num": true, "no": true, "nr": true,
	"value": true, "val": true, "hash": true, "hashed": true, "md5": true, "sha1": true,
	"sha256": true, "raw": true, "str": true, "string": true, "text": true, "list": true,
}

// gluedSuffixes are suffixWords also written run into the word before
// them ("phonenumber", "mobileno").
var gluedSuffixes = []string{"address", "addr", "number", "num", "no", "nr"}

// isCountWord reports whether w (in lower case), first in a key, makes it
// a count of PI ("num_phones", "total_emails"), whose value is not PI. A
// question ("is_", "has_", "use_"...) cancels nothing: "use_lat" and
// "is_mobile" end in a phrase and match, while "is_location_enabled" and
// "has_email_verified" end in a word that ends no phrase (nor is a
// suffixWord), and so match nothing. Boolean flags named after PI alone
// ("is_mobile", "has_email") are so taken for it, a risk accepted, as it
// only takes away.
func isCountWord(w []byte) bool {
	switch string(w) {
	case "num", "count", "total":
		return true
	}
	return false
}

// KeyKind reports whether an object key's name itself says that its value
// is PI, and which kind, so that a value can be dropped for what it is
// called even when it does not look like PI ("lat": 31.2 holds too few
// decimals to be scrubbed). The key is split into words at separators
// (anything but ASCII letters and digits) and at camelCase humps ("clientIp",
// "Client-IP", "client_ip" and "IPAddress" all hold the word "ip"); words
// compare in any case. The phrase must end the key, but for suffixWords
// after it and digits ("email_2"): "email_verified", "location_enabled"
// and "location_id" name no PI. A key starting with a count word counts PI
// rather than holding it. It allocates nothing.
func KeyKind(key string) (Kind, bool) {
	var words [32]span
	n := splitWords(key, words[:])
	if n == 0 {
		return "", false
	}
	w := words[:n]
	var buf [64]byte
	if n > 1 && isCountWord(lowerInto(buf[:0], key, w[:1])) {
		return "", false
	}
	t := 0 // trailing suffix words
	for t < n && (suffixWords[string(lowerInto(buf[:0], key, w[n-1-t:n-t]))] || isDigits(key[w[n-1-t].start:w[n-1-t].end])) {
		t++
	}
	for e := max(n-t, 1); e <= n; e++ {
		for k := min(maxPhraseWords, e); k >= 1; k-- {
			b := lowerInto(buf[:0], key, w[e-k:e])
			if b == nil {
				continue // longer than any phrase
			}
			if kind, ok := keyPhrases[string(b)]; ok {
				return kind, true
			}
			if kind, ok := gluedPhrase(b); ok {
				return kind, true
			}
		}
	}
	return "", false
}

// gluedPhrase looks b up without trailing digits and a glued suffix.
func gluedPhrase(b []byte) (Kind, bool) {
	j := len(b)
	for j > 0 && isDigit(b[j-1]) {
		j--
	}
	if j < len(b) && j > 0 {
		if kind, ok := keyPhrases[string(b[:j])]; ok {
			return kind, true
		}
	}
	for _, suf := range gluedSuffixes {
		if j > len(suf) && string(b[j-len(suf):j]) == suf {
			if kind, ok := keyPhrases[string(b[:j-len(suf)])]; ok {
				return kind, true
			}
		}
	}
	return "", false
}

type span struct{ start, end int }

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

func isDigits(t string) bool { return t != "" && digitRun(t, 0) == len(t) }

// splitWords puts the words of key in words and returns how many there
// are; past len(words), the first ones are dropped, as phrases end a key.
func splitWords(key string, words []span) int {
	n := 0
	add := func(start, end int) {
		if n == len(words) {
			copy(words, words[1:])
			n--
		}
		words[n] = span{start, end}
		n++
	}
	start := -1
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !isAlnum(c) {
			if start >= 0 {
				add(start, i)
				start = -1
			}
			continue
		}
		if start >= 0 && humpAt(key, i) {
			add(start, i)
			start = -1
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		add(start, len(key))
	}
	return n
}

// humpAt reports whether a camelCase word starts at i, inside a run of
// letters and digits: "clientIp" at I, "IPAddress" at the A of Address,
// "ipv4Address" at A; not "IPs" at P, a plural acronym.
func humpAt(key string, i int) bool {
	prev, c := key[i-1], key[i]
	if !isUpper(c) {
		return false
	}
	if isLower(prev) || isDigit(prev) {
		return true
	}
	if isUpper(prev) && i+1 < len(key) && isLower(key[i+1]) {
		plural := key[i+1] == 's' && (i+2 == len(key) || !isLetter(key[i+2]))
		return !plural
	}
	return false
}

// lowerInto appends the words w of key to b in lower case, without
// separators; nil when they do not fit in b's capacity.
func lowerInto(b []byte, key string, w []span) []byte {
	for _, sp := range w {
		if len(b)+sp.end-sp.start > cap(b) {
			return nil
		}
		for i := sp.start; i < sp.end; i++ {
			c := key[i]
			if isUpper(c) {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
	}
	return b
}
