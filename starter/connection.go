package starter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/dunningco/dunning/codec"
)

// Environment variables the connection helpers read.
const (
	EnvAddress   = "TEMPORAL_ADDRESS"   // host:port, default 127.0.0.1:7233
	EnvNamespace = "TEMPORAL_NAMESPACE" // default "default"
	EnvAPIKey    = "TEMPORAL_API_KEY"   // optional; enables TLS
	EnvTLSCert   = "TEMPORAL_TLS_CERT"  // optional client certificate file (mTLS)
	EnvTLSKey    = "TEMPORAL_TLS_KEY"   // its private key file
	// EnvTLS=true turns TLS on without client credentials: a self-hosted
	// frontend behind TLS. An API key or a client certificate turns it on
	// by itself.
	EnvTLS = "TEMPORAL_TLS"
	// EnvTLSCA names a PEM file of the CA certificates that signed the
	// server's certificate (a self-hosted cluster's private CA); without
	// it the system roots verify the server, as Temporal Cloud needs.
	EnvTLSCA = "TEMPORAL_TLS_CA"
	// EnvTLSServerName overrides the name the server's certificate is
	// checked against, when the address is not that name (an IP, or a
	// load balancer in front of the frontend).
	EnvTLSServerName = "TEMPORAL_TLS_SERVER_NAME"
)

// Connection defaults for a local development server.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// ConnectionFromEnv builds Temporal client options from the environment, with
// the SDK logging through slog.Default(). It does no I/O: client certificate
// files are read when connections are made, and the server CA file of
// TEMPORAL_TLS_CA by DialFromEnv, which reports either missing. The options
// carry no payload codec; DialFromEnv adds it.
func ConnectionFromEnv() client.Options {
	return connectionFromEnv(os.Getenv, slog.Default())
}

func connectionFromEnv(getenv func(string) string, logger *slog.Logger) client.Options {
	opts := client.Options{
		HostPort:  valueOr(getenv(EnvAddress), DefaultAddress),
		Namespace: valueOr(getenv(EnvNamespace), DefaultNamespace),
		Logger:    log.NewStructuredLogger(logger),
	}
	apiKey := getenv(EnvAPIKey)
	certFile, keyFile := getenv(EnvTLSCert), getenv(EnvTLSKey)
	if apiKey == "" && certFile == "" && keyFile == "" && !tlsRequested(getenv) {
		return opts
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: strings.TrimSpace(getenv(EnvTLSServerName))}
	if apiKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(apiKey)
	}
	if certFile != "" || keyFile != "" {
		// Loaded per handshake so rotated certificates are picked up
		// without a restart.
		tlsConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("load Temporal client certificate: %w", err)
			}
			return &cert, nil
		}
	}
	opts.ConnectionOptions.TLS = tlsConfig
	return opts
}

// DialFromEnv connects to the Temporal cluster the environment describes
// (see ConnectionFromEnv) and checks the connection. Every payload it sends
// is encrypted with the keys in DUNNING_CODEC_KEYS (or _FILE); without keys
// it refuses, unless DUNNING_CODEC_DISABLED=true says plain text is meant.
func DialFromEnv(ctx context.Context) (client.Client, error) {
	if err := checkTLSEnv(os.Getenv); err != nil {
		return nil, err
	}
	payloads, err := codec.FromEnv(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("payload encryption: %w", err)
	}
	if payloads == nil {
		slog.Warn("payload encryption is off (" + codec.EnvDisabled + "=true): customer emails and phone numbers are stored in Temporal in plain text")
	}
	opts := ConnectionFromEnv()
	if err := addServerCA(opts.ConnectionOptions.TLS, os.Getenv); err != nil {
		return nil, err
	}
	opts.DataConverter = codec.DataConverter(payloads)
	if h, ok := ctx.Value(metricsHandlerKey{}).(client.MetricsHandler); ok {
		opts.MetricsHandler = h
	}
	tc, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %q): %w", opts.HostPort, opts.Namespace, err)
	}
	return tc, nil
}

type metricsHandlerKey struct{}

// WithMetricsHandler returns ctx asking DialFromEnv to report the Temporal
// SDK's metrics to h (package metrics serves them on /metrics). It rides on
// the context so DialFromEnv keeps the signature commands and tests inject.
func WithMetricsHandler(ctx context.Context, h client.MetricsHandler) context.Context {
	return context.WithValue(ctx, metricsHandlerKey{}, h)
}

// checkTLSEnv fails fast on a half-configured or unreadable client
// certificate, which would otherwise surface as a vague handshake error.
func checkTLSEnv(getenv func(string) string) error {
	certFile, keyFile := getenv(EnvTLSCert), getenv(EnvTLSKey)
	switch {
	case certFile == "" && keyFile == "":
		return nil
	case certFile == "" || keyFile == "":
		return errors.New(EnvTLSCert + " and " + EnvTLSKey + " must be set together")
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		return fmt.Errorf("load Temporal client certificate from %s=%s and %s=%s: %w", EnvTLSCert, certFile, EnvTLSKey, keyFile, err)
	}
	return nil
}

// tlsRequested reports whether TLS was asked for without credentials:
// TEMPORAL_TLS=true, or a CA or server name to verify the server with.
func tlsRequested(getenv func(string) string) bool {
	on, _ := strconv.ParseBool(strings.TrimSpace(getenv(EnvTLS)))
	return on || getenv(EnvTLSCA) != "" || strings.TrimSpace(getenv(EnvTLSServerName)) != ""
}

// addServerCA makes tlsConfig trust only the CAs in TEMPORAL_TLS_CA, when
// set. It fails on a file that holds no certificate, which would otherwise
// surface as an unknown-authority handshake error on every call.
func addServerCA(tlsConfig *tls.Config, getenv func(string) string) error {
	file := getenv(EnvTLSCA)
	if file == "" || tlsConfig == nil {
		return nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read Temporal server CA from %s: %w", EnvTLSCA, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s=%s holds no PEM certificate", EnvTLSCA, file)
	}
	tlsConfig.RootCAs = pool
	return nil
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
