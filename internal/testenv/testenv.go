// Package testenv gives integration tests the real Kafka and ClickHouse that
// scripts/deps.sh starts, and names that keep one test's topics, groups and
// databases apart from another's.
//
// With -short the tests that need them are skipped. Otherwise an unreachable
// service skips the test on a developer machine and fails it when CI=true,
// so CI never passes by skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// KafkaBrokers returns the brokers of the test Kafka (TEST_KAFKA_BROKERS,
// default 127.0.0.1:9092), or skips or fails the test as the package doc says.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	addr := env("TEST_KAFKA_BROKERS", "127.0.0.1:9092")
	brokers := strings.Split(addr, ",")
	require(t, "Kafka", brokers[0])
	return brokers
}

// ClickHouseAddr returns the native address of the test ClickHouse
// (TEST_CLICKHOUSE_ADDR, default 127.0.0.1:9000), or skips or fails.
func ClickHouseAddr(t testing.TB) string {
	t.Helper()
	addr := env("TEST_CLICKHOUSE_ADDR", "127.0.0.1:9000")
	require(t, "ClickHouse", addr)
	return addr
}

func require(t testing.TB, name, addr string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: skipping test that needs %s", name)
	}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		conn.Close()
		return
	}
	unavailable(t, name+" is not reachable at "+addr+" (start it with scripts/deps.sh up): "+err.Error())
}

// unavailable skips the test for want of a real service, or fails it when
// CI=true: CI never skips what it must test.
func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// notNameChars are the runs of characters a name may not hold.
var notNameChars = regexp.MustCompile(`[^a-z0-9]+`)

// Name returns a name unique to this test run, safe as a Kafka topic, group
// or ClickHouse database name: prefix, the test's name and a random suffix.
func Name(t testing.TB, prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := notNameChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	return prefix + "_" + strings.Trim(name, "_") + "_" + hex.EncodeToString(b[:])
}

// Context returns a context that ends with the test or after timeout.
func Context(t testing.TB, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
