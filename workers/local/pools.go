package local

import (
	"context"
	"fmt"
	"strings"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/market/providers"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
	"github.com/accordmesh/accord/workflows"
)

// poolRuntimePrefix prefixes the runtime kind of an attached pool: the
// pool "lab" executes as runtime "pool:lab" in activities.Activities.
const poolRuntimePrefix = "pool:"

// PoolRuntime is the runtime kind under which pool name's runtime runs.
func PoolRuntime(name string) string { return poolRuntimePrefix + name }

// poolTracker records a pool's runs in the pool store so that `accord pool
// detach` refuses while they run; other runtimes are not tracked.
type poolTracker struct{ store *pools.Store }

func (t poolTracker) TaskStarted(_ context.Context, kind, runID string) error {
	if name, ok := strings.CutPrefix(kind, poolRuntimePrefix); ok {
		return t.store.TaskStarted(name, runID)
	}
	return nil
}

func (t poolTracker) TaskFinished(_ context.Context, kind, runID string) error {
	if name, ok := strings.CutPrefix(kind, poolRuntimePrefix); ok {
		return t.store.TaskFinished(name, runID)
	}
	return nil
}

// poolRuntimeFor is the runtime kind of an attached pool, "" for others.
func poolRuntimeFor(store *pools.Store, provider string) string {
	if provider == providers.LocalPoolName {
		return ""
	}
	if _, err := store.Get(provider); err != nil {
		return ""
	}
	return PoolRuntime(provider)
}

// openPoolRuntime opens the runtime of an attached pool by its kind.
func openPoolRuntime(store *pools.Store) func(ctx context.Context, kind string) (runtimes.Runtime, error) {
	return func(ctx context.Context, kind string) (runtimes.Runtime, error) {
		name, ok := strings.CutPrefix(kind, poolRuntimePrefix)
		if !ok {
			return nil, fmt.Errorf("%w: runtime %q", runtimes.ErrNotFound, kind)
		}
		p, err := store.Get(name)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", runtimes.ErrNotFound, err)
		}
		return p.Runtime(ctx)
	}
}

// providerNames are the names the host's own sellers use.
func providerNames(ctx context.Context, provs []market.Provider) map[string]bool {
	out := map[string]bool{providers.LocalPoolName: true}
	for _, p := range provs {
		if prof, err := p.Profile(ctx); err == nil {
			out[prof.Name] = true
		}
	}
	return out
}

// agentQueue is the task queue of a live provider agent that won, or ""
// for the host's own providers and pools.
func agentQueue(reg *agents.Registry, store *pools.Store, own []market.Provider, provider string) string {
	if provider == providers.LocalPoolName || poolRuntimeFor(store, provider) != "" {
		return ""
	}
	if providerNames(context.Background(), own)[provider] {
		return ""
	}
	if _, ok := reg.Live(provider); !ok {
		return ""
	}
	return workflows.ExecQueue(provider)
}
