// Package devserver embeds a single-process Temporal server (all services in
// one process, SQLite persistence) so that Accord's local stack needs no
// external service. A file database survives restarts; an empty path gives
// an in-memory database for tests.
//
// It lives in its own package because linking the Temporal server adds
// minutes of compile time and ~180 MB of binary: only the accord binary and
// the integration tests import it.
package devserver

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

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

	"github.com/accordmesh/accord/internal/ports"
)

// ErrConfig reports unusable options.
var ErrConfig = errors.New("devserver: invalid configuration")

// Options configure the embedded server.
type Options struct {
	// DatabaseFile is the SQLite file; empty means in-memory.
	DatabaseFile string
	// IP to bind (default 127.0.0.1).
	IP string
	// FrontendPort is the gRPC port clients dial; 0 picks a free one.
	FrontendPort int
	// Namespace to register (default "default").
	Namespace string
	// SearchAttributes are registered as custom search attributes.
	SearchAttributes map[string]enumspb.IndexedValueType
	// LogLevel of the server's own logs (default "error": they are noisy).
	LogLevel string
	// LogFile receives the server's logs; empty means stderr.
	LogFile string
}

// Server is a running embedded Temporal server.
type Server struct {
	srv       temporal.Server
	addr      string
	namespace string
}

// Start starts the server and returns once its frontend accepts calls.
func Start(opts Options) (*Server, error) {
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "error"
	}
	var err error
	if opts.FrontendPort == 0 {
		if opts.FrontendPort, err = freePort(opts.IP); err != nil {
			return nil, err
		}
	}
	ports := make([]int, 4) // frontend HTTP, history, matching, worker
	for i := range ports {
		if ports[i], err = freePort(opts.IP); err != nil {
			return nil, err
		}
	}
	sqlConf, err := sqlConfig(opts)
	if err != nil {
		return nil, err
	}
	hostPort := func(p int) string { return net.JoinHostPort(opts.IP, strconv.Itoa(p)) }
	const clusterName = "active"
	conf := &config.Config{}
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = opts.IP
	conf.Persistence.DefaultStore = "sqlite-default"
	conf.Persistence.VisibilityStore = "sqlite-default"
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite-default": {SQL: sqlConf}}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{clusterName: {
			Enabled:                true,
			InitialFailoverVersion: 1,
			RPCAddress:             hostPort(opts.FrontendPort),
			HTTPAddress:            hostPort(ports[0]),
			ClusterID:              "accord-local",
		}},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	svc := func(grpc, http int) config.Service {
		var s config.Service
		s.RPC.GRPCPort, s.RPC.HTTPPort, s.RPC.BindOnIP = grpc, http, opts.IP
		return s
	}
	conf.Services = map[string]config.Service{
		"frontend": svc(opts.FrontendPort, ports[0]),
		"history":  svc(ports[1], 0),
		"matching": svc(ports[2], 0),
		"worker":   svc(ports[3], 0),
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = hostPort(opts.FrontendPort)

	logger := log.NewZapLogger(log.BuildZapLogger(log.Config{Level: opts.LogLevel, OutputFile: opts.LogFile}))
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("devserver: authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("devserver: claim mapper: %w", err)
	}
	dyn := dynamicconfig.StaticClient{
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// Jobs are short and many: do not throttle a single-host server.
		dynamicconfig.FrontendMaxNamespaceRPSPerInstance.Key(): 10000,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(map[primitives.ServiceName]static.Hosts{
			primitives.FrontendService: static.SingleLocalHost(hostPort(opts.FrontendPort)),
			primitives.HistoryService:  static.SingleLocalHost(hostPort(ports[1])),
			primitives.MatchingService: static.SingleLocalHost(hostPort(ports[2])),
			primitives.WorkerService:   static.SingleLocalHost(hostPort(ports[3])),
		}),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("devserver: new server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("devserver: start: %w", err)
	}
	return &Server{srv: srv, addr: hostPort(opts.FrontendPort), namespace: opts.Namespace}, nil
}

// Address is the frontend's host:port.
func (s *Server) Address() string { return s.addr }

// Namespace is the registered namespace.
func (s *Server) Namespace() string { return s.namespace }

// Stop stops every service. Stopping twice is harmless.
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Stop()
		s.srv = nil
	}
}

func sqlConfig(opts Options) (*config.SQL, error) {
	conf := &config.SQL{PluginName: sqliteplugin.PluginName}
	if opts.DatabaseFile == "" {
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
		conf.DatabaseName = "accord-" + strconv.Itoa(rand.IntN(1<<30))
	} else {
		abs, err := filepath.Abs(opts.DatabaseFile)
		if err != nil {
			return nil, fmt.Errorf("%w: database file: %v", ErrConfig, err)
		}
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return nil, fmt.Errorf("devserver: database dir: %w", err)
		}
		conf.ConnectAttributes = map[string]string{"mode": "rwc", "journal_mode": "wal", "busy_timeout": "10000"}
		conf.DatabaseName = abs
		if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
			if err := sqliteschema.SetupSchema(conf); err != nil {
				return nil, fmt.Errorf("devserver: schema: %w", err)
			}
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig("active", opts.Namespace, false, opts.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("devserver: namespace: %w", err)
	}
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, fmt.Errorf("devserver: namespace: %w", err)
	}
	return conf, nil
}

func freePort(ip string) (int, error) {
	p, err := ports.Free(ip)
	if err != nil {
		return 0, fmt.Errorf("devserver: free port: %w", err)
	}
	return p, nil
}
