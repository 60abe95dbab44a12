package starter

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/codec"
)

func TestConnectionFromEnv(t *testing.T) {
	tests := []struct {
		name          string
		env           map[string]string
		wantHost      string
		wantNamespace string
		wantTLS       bool
		wantCreds     bool
		wantCertFunc  bool
	}{
		{name: "defaults", wantHost: DefaultAddress, wantNamespace: DefaultNamespace},
		{
			name:     "address and namespace",
			env:      map[string]string{EnvAddress: "temporal.internal:7233", EnvNamespace: "billing"},
			wantHost: "temporal.internal:7233", wantNamespace: "billing",
		},
		{
			name:     "API key",
			env:      map[string]string{EnvAddress: "billing.a1b2c.tmprl.cloud:7233", EnvAPIKey: "secret"},
			wantHost: "billing.a1b2c.tmprl.cloud:7233", wantNamespace: DefaultNamespace,
			wantTLS: true, wantCreds: true,
		},
		{
			name:     "TLS without credentials",
			env:      map[string]string{EnvAddress: "temporal.internal:7233", EnvTLS: "true"},
			wantHost: "temporal.internal:7233", wantNamespace: DefaultNamespace,
			wantTLS: true,
		},
		{
			name:     "TLS off when false",
			env:      map[string]string{EnvTLS: "false"},
			wantHost: DefaultAddress, wantNamespace: DefaultNamespace,
		},
		{
			name:     "a server CA turns TLS on",
			env:      map[string]string{EnvTLSCA: "/etc/dunning/temporal-ca.pem"},
			wantHost: DefaultAddress, wantNamespace: DefaultNamespace,
			wantTLS: true,
		},
		{
			name:     "API key and mTLS together",
			env:      map[string]string{EnvAPIKey: "secret", EnvTLSCert: "/etc/dunning/client.pem", EnvTLSKey: "/etc/dunning/client.key"},
			wantHost: DefaultAddress, wantNamespace: DefaultNamespace,
			wantTLS: true, wantCreds: true, wantCertFunc: true,
		},
		{
			name:     "mTLS",
			env:      map[string]string{EnvTLSCert: "/etc/dunning/client.pem", EnvTLSKey: "/etc/dunning/client.key"},
			wantHost: DefaultAddress, wantNamespace: DefaultNamespace,
			wantTLS: true, wantCertFunc: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := connectionFromEnv(func(k string) string { return tt.env[k] }, slog.New(slog.DiscardHandler))
			if opts.HostPort != tt.wantHost || opts.Namespace != tt.wantNamespace {
				t.Errorf("host %q namespace %q, want %q %q", opts.HostPort, opts.Namespace, tt.wantHost, tt.wantNamespace)
			}
			if opts.Logger == nil {
				t.Error("no logger")
			}
			tlsConfig := opts.ConnectionOptions.TLS
			if (tlsConfig != nil) != tt.wantTLS {
				t.Errorf("TLS = %v, want %v", tlsConfig != nil, tt.wantTLS)
			}
			if (opts.Credentials != nil) != tt.wantCreds {
				t.Errorf("credentials = %v, want %v", opts.Credentials != nil, tt.wantCreds)
			}
			if tt.wantCertFunc && (tlsConfig == nil || tlsConfig.GetClientCertificate == nil) {
				t.Error("no client certificate loader")
			}
		})
	}
}

func TestServerNameOverride(t *testing.T) {
	env := map[string]string{EnvAddress: "10.0.0.5:7233", EnvTLSServerName: "temporal.internal"}
	opts := connectionFromEnv(func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	if opts.ConnectionOptions.TLS == nil || opts.ConnectionOptions.TLS.ServerName != "temporal.internal" {
		t.Fatalf("TLS = %+v, want ServerName temporal.internal", opts.ConnectionOptions.TLS)
	}
}

// A private CA verifies a self-hosted server's certificate: a TLS server
// whose certificate that CA signed accepts the handshake, one the system
// roots would refuse.
func TestServerCA(t *testing.T) {
	certFile, keyFile := writeKeyPair(t)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	handshake := func(env map[string]string) error {
		opts := connectionFromEnv(func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
		if err := addServerCA(opts.ConnectionOptions.TLS, func(k string) string { return env[k] }); err != nil {
			return err
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), opts.ConnectionOptions.TLS)
		if err != nil {
			return err
		}
		return c.Close()
	}
	// The self-signed test certificate names dunning-test.
	if err := handshake(map[string]string{EnvTLS: "true", EnvTLSServerName: "dunning-test"}); err == nil {
		t.Error("handshake with system roots succeeded against a private CA")
	}
	if err := handshake(map[string]string{EnvTLSCA: certFile, EnvTLSServerName: "dunning-test"}); err != nil {
		t.Errorf("handshake with %s: %v", EnvTLSCA, err)
	}
	if err := handshake(map[string]string{EnvTLSCA: keyFile}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CA file without certificates: err = %v", err)
	}
	if err := handshake(map[string]string{EnvTLSCA: "/nonexistent/ca.pem"}); err == nil || !strings.Contains(err.Error(), EnvTLSCA) {
		t.Errorf("a missing CA file: err = %v", err)
	}
}

func TestCheckTLSEnv(t *testing.T) {
	certFile, keyFile := writeKeyPair(t)
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{name: "no TLS"},
		{name: "valid pair", env: map[string]string{EnvTLSCert: certFile, EnvTLSKey: keyFile}},
		{name: "cert without key", env: map[string]string{EnvTLSCert: certFile}, wantErr: "must be set together"},
		{name: "key without cert", env: map[string]string{EnvTLSKey: keyFile}, wantErr: "must be set together"},
		{name: "missing files", env: map[string]string{EnvTLSCert: "/nonexistent/c.pem", EnvTLSKey: "/nonexistent/k.pem"}, wantErr: "load Temporal client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkTLSEnv(func(k string) string { return tt.env[k] })
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}

	// The loader the options carry reads the same pair.
	opts := connectionFromEnv(func(k string) string {
		return map[string]string{EnvTLSCert: certFile, EnvTLSKey: keyFile}[k]
	}, slog.New(slog.DiscardHandler))
	cert, err := opts.ConnectionOptions.TLS.GetClientCertificate(nil)
	if err != nil || len(cert.Certificate) == 0 {
		t.Errorf("GetClientCertificate = %v, %v", cert, err)
	}
}

// writeKeyPair writes a throwaway self-signed certificate and its key.
func writeKeyPair(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dunning-test"},
		DNSNames:              []string{"dunning-test"},
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Without encryption keys, and without an explicit opt-out, nothing
// connects: customer data must not reach Temporal in plain text by accident.
func TestDialFromEnvRefusesWithoutCodecKeys(t *testing.T) {
	t.Setenv(codec.EnvKeys, "")
	t.Setenv(codec.EnvKeysFile, "")
	t.Setenv(codec.EnvDisabled, "")
	// Nothing listens here: a dial would fail differently.
	t.Setenv(EnvAddress, "127.0.0.1:1")
	_, err := DialFromEnv(context.Background())
	if !errors.Is(err, codec.ErrNoKeys) {
		t.Fatalf("err = %v, want codec.ErrNoKeys", err)
	}
	t.Setenv(codec.EnvKeys, "k1:not-a-key")
	if _, err := DialFromEnv(context.Background()); err == nil || !strings.Contains(err.Error(), codec.EnvKeys) {
		t.Fatalf("bad keys: err = %v", err)
	}
}
