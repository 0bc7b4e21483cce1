package config_test

import (
	"crypto/tls"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/config"
	"github.com/consentflow/consentflow/internal/config/configtest"
	"github.com/consentflow/consentflow/internal/testenv"
)

// Test-only PEM files: a self-signed CA and a client certificate it signed.
const (
	testCA         = "testdata/tls/ca.pem"
	testClientCert = "testdata/tls/client.pem"
	testClientKey  = "testdata/tls/client-key.pem"
)

func TestTLSValidate(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name string
		tls  config.TLS
		keys []string
	}{
		{"off", config.TLS{}, nil},
		{"off ignores files", config.TLS{CAFile: missing, CertFile: missing}, nil},
		{"on, system pool", config.TLS{Enabled: true}, nil},
		{"on, every file", config.TLS{Enabled: true, CAFile: testCA, CertFile: testClientCert, KeyFile: testClientKey, ServerName: "kafka", InsecureSkipVerify: true}, nil},
		{"missing CA", config.TLS{Enabled: true, CAFile: missing}, []string{"kafka.tls.ca_file"}},
		{"cert without key", config.TLS{Enabled: true, CertFile: testClientCert}, []string{"kafka.tls.cert_file"}},
		{"key without cert", config.TLS{Enabled: true, KeyFile: testClientKey}, []string{"kafka.tls.cert_file"}},
		{"missing key file", config.TLS{Enabled: true, CertFile: testClientCert, KeyFile: missing}, []string{"kafka.tls.key_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkBlock(tc.tls, "kafka.tls")
			if got := configtest.FieldKeys(err); !slices.Equal(got, tc.keys) {
				t.Errorf("Validate = %v (keys %q), want keys %q", err, got, tc.keys)
			}
		})
	}
}

// block is a section of a config, resolved and validated under its key.
type block interface {
	Resolve(prefix string) error
	Validate(prefix string) error
}

// checkBlock resolves b and then validates it, as config.Check does a
// service's config.
func checkBlock(b block, prefix string) error {
	if err := b.Resolve(prefix); err != nil {
		return err
	}
	return b.Validate(prefix)
}

func TestTLSBuild(t *testing.T) {
	if cfg, err := (config.TLS{CAFile: "ignored"}).Build(); cfg != nil || err != nil {
		t.Errorf("Build with TLS off = %v, %v; want nil, nil", cfg, err)
	}
	cfg, err := config.TLS{Enabled: true, CAFile: testCA, CertFile: testClientCert, KeyFile: testClientKey, ServerName: "broker.test"}.Build()
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if cfg.RootCAs == nil {
		t.Error("RootCAs not set from ca_file")
	}
	if len(cfg.Certificates) != 1 {
		t.Errorf("%d client certificates, want 1", len(cfg.Certificates))
	}
	if cfg.ServerName != "broker.test" || cfg.MinVersion != tls.VersionTLS12 || cfg.InsecureSkipVerify {
		t.Errorf("Build = ServerName %q MinVersion %x Insecure %v", cfg.ServerName, cfg.MinVersion, cfg.InsecureSkipVerify)
	}

	notPEM := writeFile(t, t.TempDir(), "not.pem", "not a certificate\n")
	if _, err := (config.TLS{Enabled: true, CAFile: notPEM}).Build(); err == nil || !strings.Contains(err.Error(), notPEM) {
		t.Errorf("Build with a non-PEM CA = %v, want an error naming the file", err)
	}
	if _, err := (config.TLS{Enabled: true, CertFile: testCA, KeyFile: testClientKey}).Build(); err == nil {
		t.Error("Build with a mismatched certificate and key succeeded")
	}
}

func TestServerTLSValidate(t *testing.T) {
	f := testenv.NewTLSFiles(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := writeFile(t, t.TempDir(), "not.pem", "not a certificate\n")
	for _, tc := range []struct {
		name string
		tls  config.ServerTLS
		keys []string
	}{
		{"off", config.ServerTLS{}, nil},
		{"on", config.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey}, nil},
		{"mutual", config.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: f.CA}, nil},
		{"cert without key", config.ServerTLS{CertFile: f.ServerCert}, []string{"privacy.tls.key_file"}},
		{"key without cert", config.ServerTLS{KeyFile: f.ServerKey}, []string{"privacy.tls.cert_file"}},
		{"client CA without cert", config.ServerTLS{ClientCAFile: f.CA}, []string{"privacy.tls.client_ca_file"}},
		{"missing cert", config.ServerTLS{CertFile: missing, KeyFile: f.ServerKey}, []string{"privacy.tls.cert_file"}},
		{"missing client CA", config.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: missing}, []string{"privacy.tls.client_ca_file"}},
		{"client CA not PEM", config.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: notPEM}, []string{"privacy.tls"}},
		{"key of another cert", config.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ClientKey}, []string{"privacy.tls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkBlock(tc.tls, "privacy.tls")
			if got := configtest.FieldKeys(err); !slices.Equal(got, tc.keys) {
				t.Errorf("Validate = %v (keys %q), want keys %q", err, got, tc.keys)
			}
		})
	}
}

func TestServerTLSBuild(t *testing.T) {
	if cfg, err := (config.ServerTLS{ClientCAFile: "ignored"}).Build(); cfg != nil || err != nil {
		t.Errorf("Build with TLS off = %v, %v; want nil, nil", cfg, err)
	}
	f := testenv.NewTLSFiles(t)
	cfg, err := config.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey}.Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 1 || cfg.ClientAuth != tls.NoClientCert || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("Build without client CA = %d certificates, ClientAuth %v, MinVersion %x", len(cfg.Certificates), cfg.ClientAuth, cfg.MinVersion)
	}
	cfg, err = config.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: f.CA}.Build()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Errorf("Build with a client CA: ClientAuth %v, ClientCAs %v; want every client to present a certificate the CA signed", cfg.ClientAuth, cfg.ClientCAs)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9105": true, "127.1.2.3:9105": true, "[::1]:9105": true, "localhost:9105": true, "LocalHost:0": true,
		":9105": false, "0.0.0.0:9105": false, "[::]:9105": false, "10.0.0.5:9105": false, "collector:9105": false,
		"127.0.0.1": false, "": false,
	} {
		if got := config.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
