// Package chx opens ClickHouse connections from config, over the native
// protocol: clickhouse-go's HTTP transport does not work with the 18.16
// server the tests use.
package chx

import (
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/consentflow/consentflow/internal/chx/chconfig"
)

// Config is how a service reaches ClickHouse (chconfig.Config, which a
// package can hold without the driver).
type Config = chconfig.Config

// ValidateIdentifier checks a database or table name that will be written
// into SQL (chconfig.ValidateIdentifier).
func ValidateIdentifier(key, name string) error { return chconfig.ValidateIdentifier(key, name) }

// Open returns a native-protocol connection pool. It does not dial until
// first use.
func Open(c *Config) (driver.Conn, error) {
	tlsCfg, err := c.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("clickhouse tls: %w", err)
	}
	dial := c.DialTimeout
	if dial == 0 {
		dial = 5 * time.Second
	}
	user := c.Username
	if user == "" {
		user = "default"
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol:    clickhouse.Native,
		Addr:        c.Addr,
		Auth:        clickhouse.Auth{Username: user, Password: c.Password.Reveal()},
		TLS:         tlsCfg,
		DialTimeout: dial,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse open: %w", err)
	}
	return conn, nil
}
