package pii

import "testing"

func TestKeyKind(t *testing.T) {
	for _, c := range []struct {
		key  string
		want Kind // "" for none
	}{
		{"email", Email}, {"e_mail", Email}, {"E-Mail", Email}, {"EMail", Email}, {"customer_email", Email},
		{"emailAddress", Email}, {"EmailAddress", Email}, {"email_hash", Email}, {"email2", Email}, {"email_2", Email},
		{"mail_address", Email},
		{"phone", Phone}, {"mobile", Phone}, {"phone_number", Phone}, {"phoneNumber", Phone}, {"PHONE_NUMBER", Phone},
		{"phonenumber", Phone}, {"mobileNo", Phone}, {"mobileno", Phone}, {"billing.phone", Phone}, {"tel", Phone},
		{"ip", IPv4}, {"ip_address", IPv4}, {"IPAddress", IPv4}, {"ipAddress", IPv4}, {"client_ip", IPv4},
		{"clientIp", IPv4}, {"Client-IP", IPv4}, {"clientIP", IPv4}, {"x-forwarded-for", IPv4}, {"remote_addr", IPv4},
		{"ipv4", IPv4}, {"userIPs", IPv4}, {"geo_ip", IPv4}, {"ipv6", IPv6}, {"ipv6Address", IPv6},
		{"mac", MAC}, {"wifi_mac", MAC}, {"macAddress", MAC}, {"bssid", MAC},
		{"idfa", DeviceID}, {"IDFV", DeviceID}, {"gaid", DeviceID}, {"advertising_id", DeviceID},
		{"advertisingId", DeviceID}, {"android_id", DeviceID}, {"androidId", DeviceID}, {"device_id", DeviceID}, {"oaid", DeviceID},
		{"imei", IMEI}, {"IMEI", IMEI}, {"device.imei", IMEI},
		{"push_token", PushToken}, {"push.token", PushToken}, {"pushToken", PushToken}, {"device_token", PushToken},
		{"fcm_token", PushToken}, {"fcmToken", PushToken}, {"apns_token", PushToken}, {"expo_push_token", PushToken},
		{"lat", Location}, {"latitude", Location}, {"lng", Location}, {"lon", Location}, {"long", Location},
		{"longitude", Location}, {"geo", Location}, {"gps", Location}, {"location", Location}, {"user_location", Location},
		{"geo.lat", Location}, {"latLng", Location}, {"lat_long", Location}, {"shipping_address", Location}, {"address_line1", Location},
		{"id_card", IDNumber}, {"idCard", IDNumber}, {"id_number", IDNumber}, {"id_no", IDNumber}, {"passport", IDNumber},
		{"passport_no", IDNumber}, {"ssn", IDNumber}, {"national_id", IDNumber},
		{"card_number", Card}, {"cardNumber", Card}, {"card_no", Card}, {"credit_card", Card}, {"creditCardNumber", Card},
		// A question word first cancels nothing: the phrase ends the key.
		{"use_lat", Location}, {"is_latitude", Location}, {"useLat", Location}, {"has_location", Location},
		{"use_gps", Location}, {"has_email", Email}, {"is_mobile", Phone}, {"isMobile", Phone}, {"show_phone", Phone},
		{"home_addr", Location}, {"home_address", Location}, {"homeAddress", Location}, {"addr", Location}, {"ADDR", Location},
		{"addr_line1", Location}, {"shipping_addresses", Location}, {"remote_addr", IPv4}, {"ip_addr", IPv4}, {"mac_addr", MAC},

		{"ship_to_city", ""}, {"tip", ""}, {"zip", ""}, {"zipcode", ""}, {"zip_code", ""}, {"ship", ""}, {"skip", ""},
		{"tips", ""}, {"equip", ""}, {"email_verified", ""}, {"emailVerified", ""}, {"is_location_enabled", ""},
		{"isLocationEnabled", ""}, {"has_email_verified", ""}, {"location_allowed", ""}, {"is_phone_set", ""},
		{"gps_known", ""}, {"use_location_services", ""}, {"total_emails", ""}, {"count_addresses", ""},
		{"address_type", ""}, {"addressee", ""}, {"location_id", ""}, {"location_type", ""}, {"ip_country", ""}, {"long_description", ""},
		{"phone_type", ""}, {"mac_os_version", ""}, {"geo_country", ""}, {"product_id", ""}, {"order_id", ""},
		{"card_type", ""}, {"card", ""}, {"token", ""}, {"mail", ""}, {"ad_id", ""}, {"price", ""}, {"number", ""},
		{"address_count", ""}, {"iphone", ""}, {"salon", ""}, {"hotel", ""}, {"belong", ""}, {"latency", ""},
		{"platform", ""}, {"description", ""}, {"", ""}, {"_", ""}, {"num_phones", ""}, {"关键词", ""},
	} {
		got, ok := KeyKind(c.key)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("KeyKind(%q) = %q, %v; want %q", c.key, got, ok, c.want)
		}
	}
}

func TestSplitWords(t *testing.T) {
	for _, c := range []struct {
		key  string
		want []string
	}{
		{"clientIp", []string{"client", "Ip"}},
		{"Client-IP", []string{"Client", "IP"}},
		{"IPAddress", []string{"IP", "Address"}},
		{"ipv4Address", []string{"ipv4", "Address"}},
		{"userIPs", []string{"user", "IPs"}},
		{"push.token", []string{"push", "token"}},
		{"ship_to_city", []string{"ship", "to", "city"}},
		{"  a  b ", []string{"a", "b"}},
		{"HTTPServerURL", []string{"HTTP", "Server", "URL"}},
	} {
		var words [32]span
		n := splitWords(c.key, words[:])
		var got []string
		for _, w := range words[:n] {
			got = append(got, c.key[w.start:w.end])
		}
		if len(got) != len(c.want) {
			t.Errorf("splitWords(%q) = %q, want %q", c.key, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("splitWords(%q) = %q, want %q", c.key, got, c.want)
				break
			}
		}
	}
	// Past the capacity, the first words go: a phrase ends a key.
	var words [2]span
	if n := splitWords("a b c", words[:]); n != 2 || words[0] != (span{2, 3}) || words[1] != (span{4, 5}) {
		t.Errorf("splitWords over capacity = %d %v", n, words)
	}
}
