package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// usersFile is what a users.d file holds, for one user and one profile.
type usersFile struct {
	Profiles struct {
		Items []struct {
			XMLName  xml.Name
			Readonly string `xml:"readonly"`
		} `xml:",any"`
	} `xml:"profiles"`
	Users struct {
		Items []struct {
			XMLName   xml.Name
			Hash      string   `xml:"password_sha256_hex"`
			Password  *string  `xml:"password"`
			IPs       []string `xml:"networks>ip"`
			Hosts     []string `xml:"networks>host_regexp"`
			Profile   string   `xml:"profile"`
			Databases []string `xml:"allow_databases>database"`
		} `xml:",any"`
	} `xml:"users"`
}

// TestSinkUsersXML checks the shipped users.d file (what it allows) and the
// copy the tests make of it.
func TestSinkUsersXML(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(root, SinkUsersFile))
	if err != nil {
		t.Fatal(err)
	}
	check := func(text, user string, databases []string, hash string) {
		t.Helper()
		var f usersFile
		if err := xml.Unmarshal([]byte(text), &f); err != nil {
			t.Fatal(err)
		}
		if len(f.Users.Items) != 1 || len(f.Profiles.Items) != 1 {
			t.Fatalf("want one user and one profile: %+v", f)
		}
		u, p := f.Users.Items[0], f.Profiles.Items[0]
		if u.XMLName.Local != user || p.XMLName.Local != user || u.Profile != user {
			t.Errorf("user %q with profile %q, profile defined %q; want all %q", u.XMLName.Local, u.Profile, p.XMLName.Local, user)
		}
		if p.Readonly != "0" {
			t.Errorf("profile readonly = %q, want 0: the sink writes", p.Readonly)
		}
		if u.Password != nil || u.Hash != hash {
			t.Errorf("password %v, sha256 %q; want only the sha256 %q", u.Password, u.Hash, hash)
		}
		if !slices.Equal(u.Databases, databases) {
			t.Errorf("allow_databases %q, want %q", u.Databases, databases)
		}
		if !slices.Equal(u.IPs, []string{"127.0.0.1", "::1"}) || len(u.Hosts) != 0 {
			t.Errorf("networks %q %q, want loopback only (the operator adds the sink hosts)", u.IPs, u.Hosts)
		}
	}
	check(string(shipped), "sink", []string{"analytics_cn", "analytics_intl"}, "${SINK_PASSWORD_SHA256}")

	out, err := usersXML(SinkUsersFile, string(shipped), "sink", "user_x", "secret", []string{"db_a", "db_b", "db_c"})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("secret"))
	check(out, "user_x", []string{"db_a", "db_b", "db_c"}, hex.EncodeToString(sum[:]))

	if _, err := usersXML(SinkUsersFile, string(shipped), "sink", "user_x", "secret", []string{"db; DROP"}); err == nil {
		t.Error("a database name that is not an identifier was accepted")
	}
}
