package testenv

import (
	"context"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/consentflow/consentflow/internal/chx"
)

// ClickHouseDB connects to the test ClickHouse at addr and drops database
// when the test ends.
func ClickHouseDB(t testing.TB, addr, database string) driver.Conn {
	t.Helper()
	conn, err := chx.Open(&chx.Config{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+database)
		_ = conn.Close()
	})
	return conn
}
