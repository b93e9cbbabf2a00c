package local

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/accordmesh/accord/activities"
	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/providers"
	"github.com/accordmesh/accord/models/exchange"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/containerd"
	"github.com/accordmesh/accord/settlement/sla"
)

// AgentOptions configure a provider agent's host (`accord provider serve`):
// its own runtime and key under its own home.
type AgentOptions struct {
	// Home is the agent's state directory (not the control plane's).
	Home string
	// Name is the provider's name (names.Provider).
	Name string
	// ContainerdAddress is an existing containerd socket; empty starts a
	// private daemon under Home/containerd.
	ContainerdAddress string
	// KeyPath is the agent's signing key (default Home/keys/provider.key,
	// created when missing).
	KeyPath string
	// API and Token reach the control plane's artifact store over HTTP
	// (artifacts.HTTP, a token of role provider): plans, sealed results,
	// tenants' inputs and upstream outputs are read from it, and collected
	// outputs pushed to it.
	API, Token string
	// ArtifactsDir, instead of API, is the control plane's store as a
	// directory this machine shares: a same-machine shortcut.
	ArtifactsDir string
	// Currency the agent prices in (default USD); Overcommit as in Options.
	Currency   string
	Overcommit float64
	// HostInputs as in Options: empty allows no host path.
	HostInputs []string
	// Stake is the most of the provider's bond it puts at risk per job
	// (its SLA offer; 0: none), in the currency's minor units.
	Stake int64
	// Registry (with its plain-HTTP flag and credentials, as in Options)
	// lets the agent run tasks that use registry models. The agent
	// verifies each model itself before mounting it: the signatures
	// against its own trust store (Home/trust.json: the owners' and the
	// operator's keys, and the log's key for scope log) and their entries
	// on the shared log at LogURL (read only; LogInsecure allows http://).
	Registry                           string
	RegistryPlainHTTP                  bool
	RegistryUsername, RegistryPassword string
	LogURL                             string
	LogInsecure                        bool
	Logger                             *slog.Logger
}

// Agent is a provider agent's host: the activities it serves on its queue,
// its runtime and key, and the pool whose profile it publishes.
type Agent struct {
	Name       string
	Activities *activities.Activities
	Runtime    runtimes.Runtime
	Key        *provenance.Key
	pool       *providers.LocalPool
	stake      int64
}

// OpenAgent opens a provider agent's runtime (starting a private containerd
// if needed) and signing key. It keeps no ledger, log or policies: those are
// the control plane's.
func OpenAgent(ctx context.Context, o AgentOptions) (*Agent, error) {
	if o.Home == "" {
		return nil, fmt.Errorf("%w: no home directory", ErrConfig)
	}
	if err := names.Provider(o.Name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if (o.ArtifactsDir == "") == (o.API == "") {
		return nil, fmt.Errorf("%w: want the control plane's API or (same machine) its artifact directory", ErrConfig)
	}
	if o.Stake < 0 || o.Stake > sla.MaxStake {
		return nil, fmt.Errorf("%w: stake %d outside 0..%d", ErrConfig, o.Stake, sla.MaxStake)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Currency == "" {
		o.Currency = "USD"
	}
	if o.KeyPath == "" {
		o.KeyPath = filepath.Join(o.Home, "keys", "provider.key")
	}
	roots, err := hostRoots(o.HostInputs)
	if err != nil {
		return nil, err
	}
	key, err := provenance.LoadOrCreateKey(o.KeyPath, provenance.AlgECDSAP256)
	if err != nil {
		return nil, fmt.Errorf("local: agent key: %w", err)
	}
	rt, err := containerd.New(ctx, containerd.Options{StateDir: filepath.Join(o.Home, "containerd"), Address: o.ContainerdAddress})
	if err != nil {
		return nil, fmt.Errorf("local: containerd: %w", err)
	}
	store := agentStore(o)
	// The agent's own attestation store keeps the envelopes it signed; it
	// logs nothing (the control plane logs what it signs).
	rec := provenance.NewRecorder(nil, key, provenance.NewStore(provenance.DefaultStoreDir(o.Home)))
	a := &Agent{Name: o.Name, Runtime: rt, Key: key, stake: o.Stake,
		pool: &providers.LocalPool{Home: o.Home, Pricing: providers.DefaultLocalPricing(o.Currency), Overcommit: o.Overcommit}}
	a.Activities = &activities.Activities{
		Artifacts:    store,
		Inputs:       store,
		Outputs:      store,
		Signer:       activities.RecorderAttestor{R: rec},
		ProviderName: o.Name,
		Runtimes:     map[string]runtimes.Runtime{rt.Name(): rt},
		JobsDir:      filepath.Join(o.Home, "jobs"),
		HostInputs:   roots,
		Log:          o.Logger.With("provider", o.Name),
	}
	if o.Registry != "" {
		x, err := agentExchange(ctx, o, key)
		if err != nil {
			rt.Close()
			return nil, err
		}
		a.Activities.Models = activities.Exchange{X: x}
	}
	return a, nil
}

// agentExchange opens the model exchange a provider agent fetches and
// verifies models with: the registry, the shared log read only, and the
// agent's own trust store.
func agentExchange(ctx context.Context, o AgentOptions, key *provenance.Key) (*exchange.Exchange, error) {
	if o.LogURL == "" {
		return nil, fmt.Errorf("%w: a registry needs the log (its URL) to verify models against", ErrConfig)
	}
	l, err := tlog.Open(ctx, tlog.Config{Kind: tlog.KindRekor, Home: o.Home, URL: o.LogURL, Insecure: o.LogInsecure, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("local: agent: transparency log: %w", err)
	}
	return newExchange(registryOptions{addr: o.Registry, plainHTTP: o.RegistryPlainHTTP,
		username: o.RegistryUsername, password: o.RegistryPassword}, o.Home, l, key)
}

// Profile is what the agent publishes: its pool's capacity, prices and SLA
// terms under the provider's name.
func (a *Agent) Profile(ctx context.Context) (market.Profile, error) {
	p, err := a.pool.Profile(ctx)
	if err != nil {
		return market.Profile{}, err
	}
	p.Name, p.Region = a.Name, "agent"
	p.SLA.Stake = a.stake
	return p, nil
}

// agentStore is the agent's view of the control plane's artifact store.
func agentStore(o AgentOptions) interface {
	artifacts.Store
	activities.InputStore
	activities.OutputStore
} {
	if o.ArtifactsDir != "" {
		return artifacts.Local{Dir: o.ArtifactsDir}
	}
	return artifacts.HTTP{BaseURL: o.API, Token: o.Token}
}
