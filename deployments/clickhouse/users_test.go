// Package clickhouse_test checks the ClickHouse users this folder ships
// (SQL for current releases, users.d XML for 18.16): none can be installed
// with a password anyone knows, or reached from anywhere. Each ships the
// variable render.sh fills in with the SHA-256 of a password the
// administrator chose, and a host restriction (loopback until the
// services' network is set).
package clickhouse_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// passwordVar is the only password a shipped user may have: the variable
// render.sh substitutes.
var passwordVar = regexp.MustCompile(`^\$\{[A-Z][A-Z_]*_PASSWORD_SHA256\}$`)

// placeholders are passwords and hashes a file must never ship: a
// literal in the repository is a password everyone knows.
var placeholders = func() map[string]string {
	m := map[string]string{strings.Repeat("0", 64): "all zeros", "": "empty"}
	for _, p := range []string{"", "password", "changeme", "replace-me", "clickhouse", "secret"} {
		sum := sha256.Sum256([]byte(p))
		m[hex.EncodeToString(sum[:])] = fmt.Sprintf("the SHA-256 of %q", p)
		if p != "" {
			m[p] = "a placeholder"
		}
	}
	return m
}()

// checkPassword says what is wrong with a shipped password or hash.
func checkPassword(v string) error {
	if passwordVar.MatchString(v) {
		return nil
	}
	if what, ok := placeholders[strings.ToLower(v)]; ok {
		return fmt.Errorf("%q is %s", v, what)
	}
	return fmt.Errorf("%q is a literal: ship ${<USER>_PASSWORD_SHA256} for render.sh", v)
}

// openHosts are host restrictions that restrict nothing.
var openHosts = regexp.MustCompile(`(?i)\bANY\b|'::/0'|'0\.0\.0\.0/0'|'::'|LIKE\s+'%'|REGEXP\s+'\.\*'`)

var (
	sqlComment = regexp.MustCompile(`--[^\n]*`)
	createUser = regexp.MustCompile(`(?is)\bCREATE\s+USER\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)(.*?);`)
	identified = regexp.MustCompile(`(?is)\bIDENTIFIED\s+WITH\s+(\w+)\s+BY\s+'([^']*)'`)
	hostClause = regexp.MustCompile(`(?is)\bHOST\s+(.*?)(?:\bSETTINGS\b|\bDEFAULT\s+ROLE\b|\bDEFAULT\s+DATABASE\b|\bGRANTEES\b|$)`)
)

// sqlUsers checks the CREATE USER statements of a SQL file: it returns the
// users it names and what is wrong with them.
func sqlUsers(name, text string) (users, problems []string) {
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, m := range createUser.FindAllStringSubmatch(sqlComment.ReplaceAllString(text, ""), -1) {
		user, rest := m[1], m[2]
		users = append(users, user)
		id := identified.FindStringSubmatch(rest)
		switch {
		case id == nil:
			errorf("%s: user %s has no password (NOT IDENTIFIED, or no IDENTIFIED WITH ... BY)", name, user)
		case checkPassword(id[2]) != nil:
			errorf("%s: user %s: password %v", name, user, checkPassword(id[2]))
		case !strings.EqualFold(id[1], "sha256_hash"):
			errorf("%s: user %s is IDENTIFIED WITH %s: ship IDENTIFIED WITH sha256_hash BY '${...}'", name, user, id[1])
		}
		host := hostClause.FindStringSubmatch(rest)
		switch {
		case host == nil || strings.TrimSpace(host[1]) == "":
			errorf("%s: user %s has no HOST: it may connect from anywhere (HOST IP '127.0.0.1', IP '::1' until the network is set)", name, user)
		case openHosts.MatchString(host[1]):
			errorf("%s: user %s: HOST %s restricts nothing", name, user, strings.TrimSpace(host[1]))
		}
	}
	return users, problems
}

// usersFile is what a users.d file holds.
type usersFile struct {
	Users struct {
		Items []struct {
			XMLName  xml.Name
			Password *string `xml:"password"`
			SHA256   *string `xml:"password_sha256_hex"`
			SHA1     *string `xml:"password_double_sha1_hex"`
			Networks *struct {
				IPs     []string `xml:"ip"`
				Hosts   []string `xml:"host"`
				Regexps []string `xml:"host_regexp"`
			} `xml:"networks"`
		} `xml:",any"`
	} `xml:"users"`
}

// xmlUsers checks the users of a users.d file: it returns their names and
// what is wrong with them.
func xmlUsers(name string, text []byte) (users, problems []string) {
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var f usersFile
	if err := xml.Unmarshal(text, &f); err != nil {
		errorf("%s: %v", name, err)
		return nil, problems
	}
	for _, u := range f.Users.Items {
		user := u.XMLName.Local
		users = append(users, user)
		switch {
		case u.Password != nil:
			// <password></password> is no password at all.
			errorf("%s: user %s has a plain <password> %q: ship <password_sha256_hex>${...}</password_sha256_hex>", name, user, *u.Password)
		case u.SHA1 != nil:
			errorf("%s: user %s has <password_double_sha1_hex>: ship <password_sha256_hex>${...}</password_sha256_hex>", name, user)
		case u.SHA256 == nil:
			errorf("%s: user %s has no password", name, user)
		default:
			if err := checkPassword(strings.TrimSpace(*u.SHA256)); err != nil {
				errorf("%s: user %s: password_sha256_hex %v", name, user, err)
			}
		}
		if u.Networks == nil || len(u.Networks.IPs)+len(u.Networks.Hosts)+len(u.Networks.Regexps) == 0 {
			errorf("%s: user %s has no <networks>: it may connect from anywhere", name, user)
			continue
		}
		for _, n := range append(append(u.Networks.IPs, u.Networks.Hosts...), u.Networks.Regexps...) {
			if n := strings.TrimSpace(n); n == "::/0" || n == "0.0.0.0/0" || n == "::" || n == ".*" || n == "" {
				errorf("%s: user %s: network %q restricts nothing", name, user, n)
			}
		}
	}
	return users, problems
}

// shipped lists the user files of this folder.
func shipped(t *testing.T) (sqlFiles, xmlFiles []string) {
	t.Helper()
	sqlFiles, _ = filepath.Glob("*.sql")
	xmlFiles, _ = filepath.Glob("users.d/*.xml")
	if len(sqlFiles) < 2 || len(xmlFiles) < 2 {
		t.Fatalf("found %v and %v, want the sink's and the privacy reader's users in both forms", sqlFiles, xmlFiles)
	}
	return sqlFiles, xmlFiles
}

// TestShippedUsersHaveNoKnownPasswordAndAHost: every user the folder ships
// has, for password, only the variable render.sh fills in (no placeholder,
// no empty password, no literal), and a host restriction.
func TestShippedUsersHaveNoKnownPasswordAndAHost(t *testing.T) {
	sqlFiles, xmlFiles := shipped(t)
	for _, name := range sqlFiles {
		text, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		users, problems := sqlUsers(name, string(text))
		for _, p := range problems {
			t.Error(p)
		}
		if len(users) == 0 {
			t.Errorf("%s: no CREATE USER", name)
		}
	}
	for _, name := range xmlFiles {
		text, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		users, problems := xmlUsers(name, text)
		for _, p := range problems {
			t.Error(p)
		}
		if len(users) == 0 {
			t.Errorf("%s: no user", name)
		}
	}
}

// TestChecksCatchWhatTheyAreFor feeds the checks the users they must
// refuse, so a check that passes everything cannot pass this test.
func TestChecksCatchWhatTheyAreFor(t *testing.T) {
	for _, bad := range []string{
		`CREATE USER IF NOT EXISTS u IDENTIFIED WITH sha256_password BY 'replace-me' SETTINGS readonly = 1;`,
		`CREATE USER u IDENTIFIED WITH sha256_hash BY '` + strings.Repeat("0", 64) + `' HOST IP '127.0.0.1';`,
		`CREATE USER u IDENTIFIED WITH sha256_hash BY '${U_PASSWORD_SHA256}';`,
		`CREATE USER u IDENTIFIED WITH sha256_hash BY '${U_PASSWORD_SHA256}' HOST ANY;`,
		`CREATE USER u NOT IDENTIFIED HOST LOCAL;`,
		`CREATE USER u IDENTIFIED WITH sha256_hash BY 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' HOST IP '::1';`,
	} {
		if _, problems := sqlUsers("bad.sql", bad); len(problems) == 0 {
			t.Errorf("accepted %s", bad)
		}
	}
	for _, bad := range []string{
		`<yandex><users><u><password_sha256_hex>` + strings.Repeat("0", 64) + `</password_sha256_hex><networks><ip>::1</ip></networks></u></users></yandex>`,
		`<yandex><users><u><password></password><networks><ip>::1</ip></networks></u></users></yandex>`,
		`<yandex><users><u><password_sha256_hex>${U_PASSWORD_SHA256}</password_sha256_hex></u></users></yandex>`,
		`<yandex><users><u><password_sha256_hex>${U_PASSWORD_SHA256}</password_sha256_hex><networks><ip>::/0</ip></networks></u></users></yandex>`,
	} {
		if _, problems := xmlUsers("bad.xml", []byte(bad)); len(problems) == 0 {
			t.Errorf("accepted %s", bad)
		}
	}
}

// TestRenderFillsInTheHashOrFails runs render.sh on every shipped file as
// the administrator does: without the variable, or with a placeholder's
// hash, it fails and prints nothing; with a real hash the user has it.
func TestRenderFillsInTheHashOrFails(t *testing.T) {
	sqlFiles, xmlFiles := shipped(t)
	render := func(file, hash string) (stdout, stderr string, err error) {
		cmd := exec.Command("sh", "render.sh", file)
		for _, kv := range os.Environ() {
			if !strings.Contains(kv, "_PASSWORD_SHA256=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		if hash != "" {
			cmd.Env = append(cmd.Env, "SINK_PASSWORD_SHA256="+hash, "PRIVACY_READER_PASSWORD_SHA256="+hash, "PRIVACY_READER_INTL_PASSWORD_SHA256="+hash)
		}
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err = cmd.Run()
		return out.String(), errOut.String(), err
	}
	sum := sha256.Sum256([]byte("a password only this test knows"))
	good := hex.EncodeToString(sum[:])
	for _, file := range append(sqlFiles, xmlFiles...) {
		for _, bad := range []string{"", strings.Repeat("0", 64), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "not-a-hash"} {
			out, errOut, err := render(file, bad)
			if err == nil || out != "" || !strings.Contains(errOut, "_PASSWORD_SHA256") {
				t.Errorf("render.sh %s with the hash %q: err %v, printed %d bytes, said %q; want a failure naming the variable and nothing printed", file, bad, err, len(out), errOut)
			}
		}
		out, errOut, err := render(file, good)
		if err != nil || strings.Contains(out, "_PASSWORD_SHA256}") || !strings.Contains(out, good) {
			t.Errorf("render.sh %s: err %v (%s); output without the hash, or with a variable left:\n%s", file, err, errOut, out)
		}
		if strings.HasSuffix(file, ".xml") {
			var f usersFile
			if err := xml.Unmarshal([]byte(out), &f); err != nil || len(f.Users.Items) == 0 || f.Users.Items[0].SHA256 == nil || *f.Users.Items[0].SHA256 != good {
				t.Errorf("render.sh %s: the user's hash is not the one given (%v)", file, err)
			}
		}
	}
}
