package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/chx"
	"github.com/consentflow/consentflow/internal/config"
)

// SinkUsersFile and PrivacyReaderUsersFile are the sink's and the privacy
// API's users for 18.16-style servers, as shipped; the users the tests make
// are these files with their own names.
const (
	SinkUsersFile          = "deployments/clickhouse/users.d/sink.xml"
	PrivacyReaderUsersFile = "deployments/clickhouse/users.d/privacy-reader.xml"
)

// ClickHouseUser is a ClickHouse user a test made for itself.
type ClickHouseUser struct {
	Name     string
	Password string
	// Databases are the only databases it may use.
	Databases []string
}

// Apply makes c log in as u.
func (u ClickHouseUser) Apply(c *chx.Config) {
	c.Username, c.Password, c.PasswordFile = u.Name, config.Secret(u.Password), ""
}

// ClickHouseSinkUser gives the test a user of the test ClickHouse at addr
// that may use the databases given and no other: the shipped
// deployments/clickhouse/users.d/sink.xml with the test's own user name,
// password and databases. As an administrator does before the sink's
// first start, it creates the databases (as the default user); it drops
// them and removes the user when the test ends.
//
// The user is a file in the users.d folder of the server scripts/deps.sh
// runs (TEST_CLICKHOUSE_USERS_DIR overrides it), which the server reloads;
// the call returns once the user can log in. Without that folder (the
// server was started otherwise, or the test is not root) it skips the
// test, or fails it when CI=true.
func ClickHouseSinkUser(t testing.TB, addr string, databases ...string) ClickHouseUser {
	t.Helper()
	return addUser(t, addr, sharedUsers(t), SinkUsersFile, "sink", databases)
}

// ClickHouseSinkUserOnEach is ClickHouseSinkUser on several servers at
// once, the replicas of a cluster: usersDirs maps each server's native
// address to its users.d folder. The user has the same name and password
// on each, as a sink logs in to every replica with one.
func ClickHouseSinkUserOnEach(t testing.TB, usersDirs map[string]string, databases ...string) ClickHouseUser {
	t.Helper()
	u := newUser(t, databases)
	for addr, dir := range usersDirs {
		addUserAs(t, addr, dir, SinkUsersFile, "sink", u)
	}
	return u
}

// sharedUsers is the users.d folder of the shared server, or no test.
func sharedUsers(t testing.TB) string {
	t.Helper()
	dir, err := sharedUsersDir()
	if err != nil {
		unavailable(t, "cannot add a ClickHouse user for the test (start ClickHouse with scripts/deps.sh up, as root): "+err.Error())
	}
	return dir
}

// ClickHousePrivacyReader is ClickHouseSinkUser for the shipped read-only
// user of the privacy API (PrivacyReaderUsersFile).
func ClickHousePrivacyReader(t testing.TB, addr string, databases ...string) ClickHouseUser {
	t.Helper()
	return addUser(t, addr, sharedUsers(t), PrivacyReaderUsersFile, "privacy_reader", databases)
}

// SinkUser is ClickHouseSinkUser on this private server.
func (s *ClickHouseServer) SinkUser(t testing.TB, databases ...string) ClickHouseUser {
	t.Helper()
	dir := filepath.Join(s.dir, "users.d")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(dir, s.uid, s.gid); err != nil {
		t.Fatal(err)
	}
	return addUser(t, s.Addr, dir, SinkUsersFile, "sink", databases)
}

// sharedUsersDir is the users.d folder of the server scripts/deps.sh runs:
// <the folder named in $DEPS_DIR/clickhouse.dir>/users.d.
func sharedUsersDir() (string, error) {
	dir := os.Getenv("TEST_CLICKHOUSE_USERS_DIR")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		deps := env("DEPS_DIR", filepath.Join(root, ".deps"))
		chDir, err := os.ReadFile(filepath.Join(deps, "clickhouse.dir"))
		if err != nil {
			return "", fmt.Errorf("no ClickHouse started by scripts/deps.sh: %w", err)
		}
		dir = filepath.Join(strings.TrimSpace(string(chDir)), "users.d")
	}
	// Writable: a file made and removed here proves it.
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return "", fmt.Errorf("users folder %s: %w (scripts/deps.sh up makes it)", dir, err)
	}
	probe.Close()
	return dir, os.Remove(probe.Name())
}

// repoRoot is the folder of go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// usersXML is a shipped users file (file, whose user and profile are named
// role) for user name with the password and databases given: the user and
// its profile renamed, the hash filled in where the file has its variable
// (${..._PASSWORD_SHA256}, as deployments/clickhouse/render.sh does), the
// database list replaced, the rest (read-only or not, loopback networks,
// the default quota) as shipped.
func usersXML(file, shipped, role, name, password string, databases []string) (string, error) {
	for _, db := range append([]string{name}, databases...) {
		if err := chx.ValidateIdentifier("name", db); err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256([]byte(password))
	var list strings.Builder
	for _, db := range databases {
		fmt.Fprintf(&list, "\n                <database>%s</database>", db)
	}
	out := shipped
	for _, r := range []struct {
		re   *regexp.Regexp
		with string
		n    int
	}{
		// The profile's name and the user's, and the user's profile.
		{regexp.MustCompile(`<(/?)` + role + `>`), "<${1}" + name + ">", 4},
		{regexp.MustCompile(`<profile>` + role + `</profile>`), "<profile>" + name + "</profile>", 1},
		{regexp.MustCompile(`<password_sha256_hex>\$\{[A-Z_]+_PASSWORD_SHA256\}</password_sha256_hex>`),
			"<password_sha256_hex>" + hex.EncodeToString(sum[:]) + "</password_sha256_hex>", 1},
		{regexp.MustCompile(`(?s)<allow_databases>.*?\n(\s*)</allow_databases>`),
			"<allow_databases>" + list.String() + "\n${1}</allow_databases>", 1},
	} {
		if n := len(r.re.FindAllStringIndex(out, -1)); n != r.n {
			return "", fmt.Errorf("%s: %d matches of %s, want %d: not the file this helper knows", file, n, r.re, r.n)
		}
		out = r.re.ReplaceAllString(out, r.with)
	}
	return out, nil
}

func addUser(t testing.TB, addr, dir, file, role string, databases []string) ClickHouseUser {
	t.Helper()
	u := newUser(t, databases)
	addUserAs(t, addr, dir, file, role, u)
	return u
}

// newUser is a user of the test's own name and a random password.
func newUser(t testing.TB, databases []string) ClickHouseUser {
	t.Helper()
	if len(databases) == 0 {
		t.Fatal("ClickHouse user: no database")
	}
	var pw [16]byte
	_, _ = rand.Read(pw[:])
	return ClickHouseUser{Name: Name(t, "user"), Password: hex.EncodeToString(pw[:]), Databases: databases}
}

// addUserAs installs u on the server at addr (see ClickHouseSinkUser).
func addUserAs(t testing.TB, addr, dir, file, role string, u ClickHouseUser) {
	t.Helper()
	databases := u.Databases
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	xml, err := usersXML(file, string(shipped), role, u.Name, u.Password, databases)
	if err != nil {
		t.Fatal(err)
	}

	admin, err := chx.Open(&chx.Config{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, db := range databases {
			_ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		}
		_ = admin.Close()
	})
	for _, db := range databases {
		if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
			t.Fatalf("create database %s: %v", db, err)
		}
	}
	path := installUsersFile(t, addr, dir, u.Name, xml)

	// The server applies the file at SYSTEM RELOAD CONFIG (or at its own
	// look every 2s): wait until the user can log in.
	var cfg chx.Config
	cfg.Addr, cfg.DialTimeout = []string{addr}, time.Second
	u.Apply(&cfg)
	conn, err := chx.Open(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for {
		pingCtx, cancelPing := context.WithTimeout(ctx, time.Second)
		err = conn.Ping(pingCtx)
		cancelPing()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			reload := admin.Exec(context.Background(), "SYSTEM RELOAD CONFIG")
			t.Fatalf("ClickHouse user %s from %s cannot log in after 30s: %v (SYSTEM RELOAD CONFIG: %v); is %s the users.d folder of the server at %s?",
				u.Name, path, err, reload, dir, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// installUsersFile writes a users file (as users.d takes it)
// into dir, the users.d folder of the server at addr, asks that server to
// reload its users, and removes the file when the test ends. It returns
// the file's path. The file is named testenv_<name>.xml: scripts/deps.sh
// removes such files a killed test left when it next starts the server.
func installUsersFile(t testing.TB, addr, dir, name, xml string) string {
	t.Helper()
	path := filepath.Join(dir, "testenv_"+name+".xml")
	// Written whole, then renamed: the server must never read half a file,
	// which would stop it from reloading anyone's users.
	tmp := filepath.Join(dir, ".testenv_"+name+".tmp")
	if err := os.WriteFile(tmp, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		t.Fatal(err)
	}
	reload := func() {
		conn, err := chx.Open(&chx.Config{Addr: []string{addr}})
		if err != nil {
			return
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// An error here (another file the server refuses) shows as a user
		// that cannot log in; the caller reports it.
		_ = conn.Exec(ctx, "SYSTEM RELOAD CONFIG")
	}
	t.Cleanup(func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove ClickHouse users file: %v", err)
		}
		reload()
	})
	reload()
	return path
}
