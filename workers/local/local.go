// Package local opens the components a single Accord host runs behind its
// activities: the containerd runtime (a private daemon if none is given),
// the ledger, tenancy and CEL policies, the transparency log, the worker's
// signing key (trusted for stage attestations), and the market's sellers
// (this host's pool, configured providers and attached Nomad pools). Open
// returns them wired into an activities.Activities for workers.Start.
package local

import (
	"time"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/accordmesh/accord/activities"
	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/market/providers"
	"github.com/accordmesh/accord/market/queue"
	"github.com/accordmesh/accord/models/exchange"
	"github.com/accordmesh/accord/models/registry"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	_ "github.com/accordmesh/accord/provenance/tlog/embedded" // registers the embedded log
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/containerd"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
	"github.com/accordmesh/accord/settlement"
)

// ErrConfig reports unusable options.
var ErrConfig = errors.New("local: invalid configuration")

// Options configure the components of a single-host Accord.
type Options struct {
	// Home is Accord's state directory.
	Home string
	// ContainerdAddress is an existing containerd socket; empty starts a
	// private daemon under Home/containerd.
	ContainerdAddress string
	// LedgerDSN defaults to the SQLite ledger under Home.
	LedgerDSN string
	// LogKind is the transparency log backend (default embedded); LogURL is
	// the Rekor server for tlog.KindRekor, whose key must be in the trust
	// store for scope log (provenance.TrustLog). LogInsecure allows an
	// http:// LogURL. LogToken is the writer token for a log that
	// authenticates uploads (`accord log serve`); LogTokenFile, when set,
	// is a file holding it instead (read at start, one line).
	LogKind, LogURL string
	LogInsecure     bool
	LogToken        string
	LogTokenFile    string
	// PoliciesDir holds CEL policy files (default Home/policies; missing is
	// an empty policy set).
	PoliciesDir string
	// ProvidersFile lists extra market providers (market.LoadProviders
	// format; default Home/providers.yaml when it exists). Their names map to
	// runtime kinds of the same name; the local pool runs on containerd.
	ProvidersFile string
	// Currency the local pool prices in (default USD).
	Currency string
	// FeeBP is the platform fee; MarginBP the escrow margin over the price.
	FeeBP, MarginBP int64
	// Overcommit multiplies the CPUs and memory the local pool offers
	// (providers.LocalPool.Overcommit); 0 or 1 offers the host as it is.
	Overcommit float64
	// AutoCreateTenants admits jobs of unknown tenants by creating them
	// with no quota: the single-user stack (`accord run`, `accord dev`)
	// only. A shared worker leaves it false and denies such jobs.
	AutoCreateTenants bool
	// TestDuration bounds each acceptance-test container (default
	// activities.DefaultTestDuration).
	TestDuration time.Duration
	// HostInputs are the directories under which tasks may mount host path
	// inputs and import oci-archive: images (the operator's --host-inputs);
	// empty allows none, as a shared worker should.
	HostInputs []string
	// Registry is the model registry ("host:port" or "host:port/prefix")
	// that jobs resolve, fetch and publish models in; empty refuses jobs
	// that use or publish models. RegistryPlainHTTP talks HTTP to it (a
	// registry on this machine); RegistryUsername and RegistryPassword
	// are its basic-auth credentials.
	Registry                           string
	RegistryPlainHTTP                  bool
	RegistryUsername, RegistryPassword string
	Logger                             *slog.Logger
}

// Host is the set of real components one host runs.
type Host struct {
	Activities *activities.Activities
	Ledger     *settlement.Ledger
	Log        tlog.Log
	Runtime    runtimes.Runtime
	Store      *policies.Store
	// Recorder signs and logs stage attestations with the worker's key into
	// Provenance, the home's attestation store.
	Recorder   *provenance.Recorder
	Provenance *provenance.Store
	home       string
	feeBP      int64
	closers    []func() error
}

// Open opens every component under o.Home: the containerd runtime
// (starting a private daemon if needed), the ledger, tenancy and policies,
// the transparency log and the worker's signing key, which it adds to the
// trust store for stage attestations (and the log's key for checkpoints).
func Open(ctx context.Context, o Options) (*Host, error) {
	if o.Home == "" {
		return nil, fmt.Errorf("%w: no home directory", ErrConfig)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MarginBP == 0 {
		o.MarginBP = 2000
	}
	roots, err := hostRoots(o.HostInputs)
	if err != nil {
		return nil, err
	}
	l := &Host{home: o.Home, feeBP: o.FeeBP}
	fail := func(err error) (*Host, error) {
		l.Close()
		return nil, err
	}
	rt, err := containerd.New(ctx, containerd.Options{StateDir: filepath.Join(o.Home, "containerd"), Address: o.ContainerdAddress})
	if err != nil {
		return fail(fmt.Errorf("local: containerd: %w", err))
	}
	l.Runtime = rt
	dsn := o.LedgerDSN
	if dsn == "" {
		dsn = settlement.ResolveDSN("", o.Home)
	}
	if l.Ledger, err = settlement.Open(ctx, dsn); err != nil {
		return fail(fmt.Errorf("local: ledger: %w", err))
	}
	l.closers = append(l.closers, l.Ledger.Close)
	if l.Store, err = policies.OpenStore(ctx, policies.StorePath(o.Home)); err != nil {
		return fail(fmt.Errorf("local: tenancy: %w", err))
	}
	l.closers = append(l.closers, l.Store.Close)
	pdir := o.PoliciesDir
	if pdir == "" {
		pdir = filepath.Join(o.Home, "policies")
	}
	set, err := policies.LoadDir(pdir)
	if err != nil {
		return fail(fmt.Errorf("local: policies: %w", err))
	}
	kind := o.LogKind
	if kind == "" {
		kind = tlog.KindEmbedded
	}
	token, err := logToken(o)
	if err != nil {
		return fail(err)
	}
	if l.Log, err = tlog.Open(ctx, tlog.Config{Kind: kind, Home: o.Home, URL: o.LogURL, Insecure: o.LogInsecure, Token: token}); err != nil {
		return fail(fmt.Errorf("local: transparency log: %w", err))
	}
	switch c := l.Log.(type) {
	case interface{ Close(context.Context) error }:
		l.closers = append(l.closers, func() error { return c.Close(context.Background()) })
	case interface{ Close() error }:
		l.closers = append(l.closers, c.Close)
	}
	key, err := provenance.LoadOrCreateKey(filepath.Join(o.Home, "keys", "worker.key"), provenance.AlgECDSAP256)
	if err != nil {
		return fail(fmt.Errorf("local: signing key: %w", err))
	}
	if err := trustLocal(ctx, o.Home, key, l.Log, o.LogURL); err != nil {
		return fail(err)
	}
	provs, err := Sellers(o)
	if err != nil {
		return fail(err)
	}
	poolStore := pools.Open(o.Home)
	agentReg := agents.Open(o.Home)
	// Batch-mode jobs wait here for the periodic clearing: beside the
	// artifact store that holds the plans the entries name.
	clearing, err := queue.Open(queue.DefaultDir(o.Home))
	if err != nil {
		return fail(fmt.Errorf("local: clearing queue: %w", err))
	}
	l.Provenance = provenance.NewStore(provenance.DefaultStoreDir(o.Home))
	l.Recorder = provenance.NewRecorder(l.Log, key, l.Provenance)
	l.Activities = &activities.Activities{
		Compiler: activities.SpecCompiler{},
		Admitter: activities.PolicyAdmitter{A: &policies.Admitter{Policies: set, Store: l.Store, AutoCreate: o.AutoCreateTenants, Verify: specVerifier(o.Home)}},
		Negotiator: activities.MarketNegotiator{Broker: broker.Broker{
			// Attached pools are read at each negotiation, so a pool attached
			// or detached while the worker runs takes effect at once.
			Providers: func(ctx context.Context) ([]market.Provider, error) {
				own := append(append([]market.Provider(nil), provs...), providers.Pools(poolStore, o.Logger)...)
				// Provider agents with a fresh heartbeat bid too; a name
				// this host already sells under stays this host's.
				live, err := agentReg.Providers(ctx, providerNames(ctx, own))
				if err != nil {
					o.Logger.Warn("provider agents", "error", err)
				}
				return append(own, live...), nil
			},
			Runtime: map[string]string{providers.LocalPoolName: rt.Name()},
			RuntimeFor: func(provider string) string {
				if kind := poolRuntimeFor(poolStore, provider); kind != "" {
					return kind
				}
				if a, ok := agentReg.Live(provider); ok {
					return a.Runtime
				}
				return ""
			},
			DefaultRuntime: rt.Name(),
			Placement:      set.PlacementFilter,
			Assign:         providers.AssignDevices(poolStore),
		},
			// An agent's tasks run on its own queue; the award names it
			// only while the agent is alive and not shadowed by a local name.
			Queue: func(provider string) string { return agentQueue(agentReg, poolStore, provs, provider) },
		},
		Ledger: activities.SettlementLedger{L: l.Ledger, MarginBP: o.MarginBP, FeeBP: o.FeeBP},
		// The admitter reserves quota; a failed or cancelled job releases
		// its reservation and a settled one replaces it by what it spent.
		Quota:     l.Store,
		Artifacts: artifacts.Local{Dir: artifacts.DefaultDir(o.Home)},
		// A provider agent's execution attestation is checked against the
		// home's trust store (scope provider:<name>), read at each check.
		Attestor: activities.RecorderAttestor{R: l.Recorder, Trust: func() (*provenance.TrustStore, error) {
			return provenance.LoadTrustStore(provenance.DefaultTrustPath(o.Home))
		}},
		Runtimes:    map[string]runtimes.Runtime{rt.Name(): rt},
		OpenRuntime: openPoolRuntime(poolStore),
		// Acceptance tests run here, on this host's containerd, whoever
		// executed the tasks.
		VerifyRuntime: rt.Name(),
		TestDuration:  o.TestDuration,
		Tracker:       poolTracker{store: poolStore},
		JobsDir:       filepath.Join(o.Home, "jobs"),
		HostInputs:    roots,
		// Tenants' inputs and images: the artifact store that `accord data
		// push` and POST /v1/data fill, checked per tenant and verified
		// when materialized under $ACCORD_HOME/inputs.
		Inputs: artifacts.Local{Dir: artifacts.DefaultDir(o.Home)},
		// What a provider agent on another machine may read of the store
		// (the API's /v1/blobs): recorded when its job is placed.
		Grants: artifacts.Local{Dir: artifacts.DefaultDir(o.Home)},
		// Provider agents' liveness and reputation: failover and spot
		// checks (job layout 6).
		Providers: agentReg,
		Clearing:  clearing,
		Log:       o.Logger,
	}
	if o.Registry != "" {
		x, err := OpenExchange(o, l.Log, key)
		if err != nil {
			return fail(err)
		}
		l.Activities.Models = activities.Exchange{X: x}
	}
	return l, nil
}

// OpenExchange opens the model exchange on o.Registry: models are logged
// to l, published with key, verified against the home's trust store (read
// at each verification) and cached under Home/models.
func OpenExchange(o Options, l tlog.Log, key *provenance.Key) (*exchange.Exchange, error) {
	return newExchange(registryOptions{addr: o.Registry, plainHTTP: o.RegistryPlainHTTP,
		username: o.RegistryUsername, password: o.RegistryPassword}, o.Home, l, key)
}

// registryOptions locate a model registry and its credentials.
type registryOptions struct {
	addr               string
	plainHTTP          bool
	username, password string
}

// newExchange opens the exchange on r with home's trust store and model
// cache.
func newExchange(r registryOptions, home string, l tlog.Log, key *provenance.Key) (*exchange.Exchange, error) {
	reg, err := registry.New(r.addr, registry.Options{PlainHTTP: r.plainHTTP, Username: r.username, Password: r.password})
	if err != nil {
		return nil, fmt.Errorf("local: model registry: %w", err)
	}
	trust := provenance.DefaultTrustPath(home)
	return &exchange.Exchange{
		Registry: reg, Log: l, Key: key, CacheDir: filepath.Join(home, "models"),
		Trust: func() (*provenance.TrustStore, error) { return provenance.LoadTrustStore(trust) },
	}, nil
}

// hostRoots makes the --host-inputs directories absolute and checks that
// each is a directory, so a typo fails at start rather than at a job.
func hostRoots(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("%w: host inputs %s: %v", ErrConfig, d, err)
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%w: host inputs %s is not a directory", ErrConfig, d)
		}
		out = append(out, abs)
	}
	return out, nil
}

// Sellers is the local pool plus any configured providers.
func Sellers(o Options) ([]market.Provider, error) {
	cur := o.Currency
	if cur == "" {
		cur = "USD"
	}
	out := []market.Provider{&providers.LocalPool{Home: o.Home, Pricing: providers.DefaultLocalPricing(cur), Overcommit: o.Overcommit}}
	path := o.ProvidersFile
	if path == "" {
		path = filepath.Join(o.Home, "providers.yaml")
		if _, err := os.Stat(path); err != nil {
			return out, nil
		}
	}
	more, err := market.LoadProviders(path)
	if err != nil {
		return nil, fmt.Errorf("local: providers: %w", err)
	}
	return append(out, more...), nil
}

// trustLocal makes a local stack's receipts verifiable: the worker key may
// sign stage attestations and the embedded log's key checkpoints; another
// log's key must already be trusted (provenance.TrustLog). Idempotent.
func trustLocal(ctx context.Context, home string, key *provenance.Key, l tlog.Log, logURL string) error {
	path := provenance.DefaultTrustPath(home)
	ts, err := provenance.LoadTrustStore(path)
	if err != nil {
		return fmt.Errorf("local: trust store: %w", err)
	}
	if _, err := ts.Add(key.PublicPEM(), "local worker", provenance.ScopeStage); err != nil {
		return fmt.Errorf("local: trust worker key: %w", err)
	}
	if err := provenance.TrustLog(ctx, l, ts, logURL); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("local: trust store: %w", err)
	}
	return ts.Save(path)
}

// Close closes the components (not the containerd daemon, which outlives
// the process so that running tasks survive a worker restart).
func (l *Host) Close() error {
	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		errs = append(errs, l.closers[i]())
	}
	l.closers = nil
	return errors.Join(errs...)
}

// specVerifier checks spec signatures against the home's trust store, read
// on each admission so that `accord keys trust` takes effect without a
// worker restart. The signature must cover every file the plan was
// compiled from.
func specVerifier(home string) policies.SpecVerifier {
	return func(ctx context.Context, s policies.SignedSpec) (string, error) {
		ts, err := provenance.LoadTrustStore(provenance.DefaultTrustPath(home))
		if err != nil {
			return "", err
		}
		b, err := provenance.SpecBundleOf(s.Document, s.Documents)
		if err != nil {
			return "", err
		}
		return provenance.VerifySpecSignature(ctx, s.Signature, b, ts, s.Tenant, s.Now)
	}
}

// maxTokenFile bounds a log token file (a token is under 100 bytes).
const maxTokenFile = 4 << 10

// logToken is the log writer token: o.LogTokenFile's one line when set,
// else o.LogToken.
func logToken(o Options) (string, error) {
	if o.LogTokenFile == "" {
		return o.LogToken, nil
	}
	b, err := bounded.ReadFile(o.LogTokenFile, maxTokenFile)
	if err != nil {
		return "", fmt.Errorf("local: log token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("local: log token file %s: want one line holding the token", o.LogTokenFile)
	}
	return tok, nil
}
