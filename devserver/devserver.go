// Package devserver runs a real Temporal server (SQLite persistence) and,
// optionally, the Temporal Web UI inside the current process. It exists for
// dev mode and integration tests only; production workers connect to an
// external cluster and never link this package.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

const clusterName = "active"

// Options configures the embedded server.
type Options struct {
	// IP the frontend (and UI) bind to. Defaults to 127.0.0.1.
	IP string
	// FrontendPort for gRPC clients. 0 picks a free port.
	FrontendPort int
	// UIPort for the Web UI. 0 disables the UI.
	UIPort int
	// DatabaseFile persists history in SQLite. Empty keeps it in memory.
	DatabaseFile string
	// Namespace to register. Defaults to "default".
	Namespace string
	// SearchAttributes are registered on the namespace when it is created.
	SearchAttributes map[string]enumspb.IndexedValueType
	// LogLevel of the server's own logs ("debug", "info", "warn", "error"). Defaults to "warn".
	LogLevel string
	// CodecEndpoint is the remote codec the Web UI decodes payloads with
	// (e.g. "http://127.0.0.1:8080/codec"). Empty shows payloads as stored.
	CodecEndpoint string
}

// Server is a running embedded Temporal server.
type Server struct {
	temporal  temporal.Server
	ui        *uiserver.Server
	hostPort  string
	uiAddress string
	namespace string
}

// Start builds and starts the server; it returns once the frontend accepts
// connections.
func Start(opts Options) (*Server, error) {
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	if opts.FrontendPort == 0 {
		p, err := freePort(opts.IP)
		if err != nil {
			return nil, err
		}
		opts.FrontendPort = p
	}
	hostPort := net.JoinHostPort(opts.IP, strconv.Itoa(opts.FrontendPort))

	conf, err := buildConfig(opts, hostPort)
	if err != nil {
		return nil, err
	}
	logger := log.NewZapLogger(log.BuildZapLogger(log.Config{Level: opts.LogLevel, Stdout: true, Format: "console"}))
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("devserver: authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("devserver: claim mapper: %w", err)
	}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for name, svc := range map[primitives.ServiceName]string{
		primitives.FrontendService: "frontend",
		primitives.HistoryService:  "history",
		primitives.MatchingService: "matching",
		primitives.WorkerService:   "worker",
	} {
		hosts[name] = static.SingleLocalHost(net.JoinHostPort(opts.IP, strconv.Itoa(conf.Services[svc].RPC.GRPCPort)))
	}
	dyn := dynamicconfig.StaticClient{
		// Search attributes added at runtime become visible at once, which
		// tests and a fresh dev server rely on.
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key():      true,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("devserver: build server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("devserver: start server: %w", err)
	}
	s := &Server{temporal: srv, hostPort: hostPort, namespace: opts.Namespace}
	if opts.UIPort != 0 {
		s.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
			Host:                opts.IP,
			Port:                opts.UIPort,
			TemporalGRPCAddress: hostPort,
			EnableUI:            true,
			CORS:                uiconfig.CORS{CookieInsecure: true},
			HideLogs:            true,
			DefaultNamespace:    opts.Namespace,
			// With credentials, a session made at the endpoint's sign-in
			// page also reaches it from the browser.
			Codec: uiconfig.Codec{Endpoint: opts.CodecEndpoint, IncludeCredentials: opts.CodecEndpoint != ""},
		}))
		s.uiAddress = "http://" + net.JoinHostPort(opts.IP, strconv.Itoa(opts.UIPort))
		uiErr := make(chan error, 1)
		// The UI server's Start blocks until Stop.
		go func() { uiErr <- s.ui.Start() }()
		select {
		case err := <-uiErr:
			if err != nil && !errors.Is(err, context.Canceled) {
				_ = srv.Stop()
				return nil, fmt.Errorf("devserver: start web UI on %s: %w", s.uiAddress, err)
			}
		case <-time.After(300 * time.Millisecond):
		}
	}
	return s, nil
}

// HostPort is the frontend's gRPC address.
func (s *Server) HostPort() string { return s.hostPort }

// Namespace is the registered namespace.
func (s *Server) Namespace() string { return s.namespace }

// UIAddress is the Web UI's URL, empty when the UI is off.
func (s *Server) UIAddress() string { return s.uiAddress }

// Stop shuts the UI and the server down.
func (s *Server) Stop() error {
	if s.ui != nil {
		s.ui.Stop()
	}
	return s.temporal.Stop()
}

func buildConfig(opts Options, hostPort string) (*config.Config, error) {
	sqlConf := &config.SQL{PluginName: sqliteplugin.PluginName, ConnectAttributes: map[string]string{}}
	if opts.DatabaseFile == "" {
		sqlConf.ConnectAttributes["mode"] = "memory"
		sqlConf.ConnectAttributes["cache"] = "shared"
		sqlConf.DatabaseName = strconv.Itoa(rand.IntN(1 << 30))
	} else {
		sqlConf.ConnectAttributes["mode"] = "rwc"
		sqlConf.DatabaseName = opts.DatabaseFile
		if _, err := os.Stat(opts.DatabaseFile); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(opts.DatabaseFile), 0o755); err != nil {
				return nil, fmt.Errorf("devserver: create database dir: %w", err)
			}
			if err := sqliteschema.SetupSchema(sqlConf); err != nil {
				return nil, fmt.Errorf("devserver: set up sqlite schema: %w", err)
			}
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, opts.Namespace, false, opts.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("devserver: namespace config: %w", err)
	}
	if err := sqliteschema.CreateNamespaces(sqlConf, ns); err != nil {
		return nil, fmt.Errorf("devserver: create namespace: %w", err)
	}

	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = opts.IP
	conf.Persistence.DefaultStore = "sqlite"
	conf.Persistence.VisibilityStore = "sqlite"
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: sqlConf}}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {Enabled: true, InitialFailoverVersion: 1, RPCAddress: hostPort},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		var svc config.Service
		svc.RPC.BindOnIP = opts.IP
		if name == "frontend" {
			svc.RPC.GRPCPort = opts.FrontendPort
			// The HTTP API serves Nexus callbacks and the HTTP/JSON API.
			p, err := freePort(opts.IP)
			if err != nil {
				return nil, err
			}
			svc.RPC.HTTPPort = p
		} else {
			p, err := freePort(opts.IP)
			if err != nil {
				return nil, err
			}
			svc.RPC.GRPCPort = p
		}
		conf.Services[name] = svc
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = hostPort
	return &conf, nil
}

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("devserver: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
