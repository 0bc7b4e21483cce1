package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS configures a client's TLS connection to Kafka or ClickHouse. The zero
// value means plaintext.
type TLS struct {
	// Enabled turns TLS on; the other fields matter only then.
	Enabled bool `mapstructure:"enabled"`
	// CAFile is a PEM bundle of CAs to trust; empty means the system pool.
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key for mutual
	// TLS; both or neither.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ServerName overrides the name checked in the server certificate;
	// empty means the host dialled.
	ServerName string `mapstructure:"server_name"`
	// InsecureSkipVerify disables certificate checks: for tests only.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// Validate checks that files named exist and pairs are complete; prefix is
// the YAML key of this block.
func (t TLS) Validate(prefix string) error {
	if !t.Enabled {
		return nil
	}
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, Invalid(prefix+".cert_file", "cert_file and key_file go together"))
	}
	for _, f := range []struct{ key, path string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, Invalid(prefix+"."+f.key, "%v", err))
		}
	}
	if len(errs) == 0 {
		if _, err := t.Build(); err != nil {
			errs = append(errs, Invalid(prefix, "%v", err))
		}
	}
	return errors.Join(errs...)
}

// Build returns the crypto/tls config, or nil when TLS is off.
func (t TLS) Build() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as test-only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
