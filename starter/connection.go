package starter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"

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
)

// Connection defaults for a local development server.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// ConnectionFromEnv builds Temporal client options from the environment, with
// the SDK logging through slog.Default(). It does no I/O: certificate files
// are read when connections are made, so DialFromEnv reports them missing.
// The options carry no payload codec; DialFromEnv adds it.
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
	if apiKey == "" && certFile == "" && keyFile == "" {
		return opts
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
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

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
