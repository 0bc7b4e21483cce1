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

// Resolve checks that the files named exist and, when cert_file and
// key_file go together, that they load; prefix is the YAML key of this
// block. The files are read again when the client is built.
func (t TLS) Resolve(prefix string) error {
	if !t.Enabled {
		return nil
	}
	errs := statFiles(prefix, []tlsFile{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}})
	if len(errs) == 0 && t.pairComplete() {
		if _, err := t.Build(); err != nil {
			errs = append(errs, Invalid(prefix, "%v", err))
		}
	}
	return errors.Join(errs...)
}

// Validate checks that cert_file and key_file go together; prefix is the
// YAML key of this block.
func (t TLS) Validate(prefix string) error {
	if t.Enabled && !t.pairComplete() {
		return Invalid(prefix+".cert_file", "cert_file and key_file go together")
	}
	return nil
}

// pairComplete reports whether cert_file and key_file are both set or both
// empty.
func (t TLS) pairComplete() bool { return (t.CertFile == "") == (t.KeyFile == "") }

// tlsFile is a file a TLS block names, by its key.
type tlsFile struct{ key, path string }

// statFiles checks that each file named exists, naming its key under prefix.
func statFiles(prefix string, files []tlsFile) []error {
	var errs []error
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, Invalid(prefix+"."+f.key, "%v", err))
		}
	}
	return errs
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
		pool, err := certPool("CA file", t.CAFile)
		if err != nil {
			return nil, err
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

// ServerTLS configures a server's TLS listener. The zero value means
// plaintext; CertFile and KeyFile together turn TLS on.
type ServerTLS struct {
	// CertFile and KeyFile are the server's PEM certificate (chain) and
	// key; both or neither. They are read once, at start-up: restart the
	// service after renewing them.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ClientCAFile is a PEM bundle of the CAs that sign client
	// certificates. Set, every client must present a certificate one of
	// them signed (mutual TLS); empty means no client certificate is asked.
	ClientCAFile string `mapstructure:"client_ca_file"`
}

// Enabled reports whether TLS is on.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" }

// Resolve checks that the files named exist and, with cert_file and
// key_file both set, that they load; prefix is the YAML key of this block.
// The files are read again when the server is built.
func (t ServerTLS) Resolve(prefix string) error {
	errs := statFiles(prefix, []tlsFile{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"client_ca_file", t.ClientCAFile}})
	if len(errs) == 0 && t.CertFile != "" && t.KeyFile != "" {
		if _, err := t.Build(); err != nil {
			errs = append(errs, Invalid(prefix, "%v", err))
		}
	}
	return errors.Join(errs...)
}

// Validate checks that pairs are complete; prefix is the YAML key of this
// block.
func (t ServerTLS) Validate(prefix string) error {
	switch {
	case t.CertFile == "" && t.KeyFile != "":
		return Invalid(prefix+".cert_file", "is required with key_file")
	case t.CertFile != "" && t.KeyFile == "":
		return Invalid(prefix+".key_file", "is required with cert_file")
	case t.CertFile == "" && t.ClientCAFile != "":
		return Invalid(prefix+".client_ca_file", "needs cert_file and key_file: client certificates are asked for only over TLS")
	}
	return nil
}

// Build returns the crypto/tls config, or nil when TLS is off.
func (t ServerTLS) Build() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load server certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.ClientCAFile != "" {
		pool, err := certPool("client CA file", t.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// certPool reads the PEM certificates of file (what names it in errors).
func certPool(what, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s holds no PEM certificate", what, file)
	}
	return pool, nil
}
