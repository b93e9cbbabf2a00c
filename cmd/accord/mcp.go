package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	agentmcp "github.com/accordmesh/accord/agents/mcp"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/market/providers"
	"github.com/accordmesh/accord/models/search"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/apijobs"
	"github.com/accordmesh/accord/workers/local"
)

func init() { root.AddCommand(mcpCmd()) }

func mcpCmd() *cobra.Command {
	var tf temporalFlags
	var lf logFlags
	var mf modelFlags
	var token string
	c := &cobra.Command{
		Use:   "mcp",
		Short: "Serve Accord to a local agent over MCP (stdio)",
		Example: `  accord mcp                       # as this home's operator
  accord mcp --token "$ACCORD_TOKEN"  # as a tenant or auditor token from accord token create
  accord mcp --registry localhost:5000 --registry-plain-http   # with model_search and model_inspect`,
		Long: "mcp speaks the Model Context Protocol on standard input and output, for an agent on this\n" +
			"machine (Claude Desktop or Claude Code style: command \"accord\", args [\"mcp\"]). Its tools lint,\n" +
			"compile and quote specs sent as text, submit and follow jobs, read logs, cancel, approve, fetch\n" +
			"and verify receipts, search the log and read ledger statements; model_search and model_inspect\n" +
			"when --registry is set. It acts as this home's operator (every tenant; approvals as $USER), or\n" +
			"as --token's principal (a tenant's token sees its own jobs; an auditor's gets read-only tools).\n" +
			"Specs are parsed as uploads: they must stand alone and name no host path. `accord serve`\n" +
			"serves the same tools over streamable HTTP at /mcp behind its bearer tokens. See docs/agents.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext()
			defer stop()
			home, err := cli.Home()
			if err != nil {
				return err
			}
			p, err := mcpPrincipal(ctx, token)
			if err != nil {
				return err
			}
			tc, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			prov, err := lf.open(ctx, false)
			if err != nil {
				return err
			}
			defer prov.Close(context.Background())
			jobs := &apijobs.Jobs{Client: tc, Home: home, Prov: prov}
			b, done, err := agentBackend(ctx, home, jobs)
			if err != nil {
				return err
			}
			defer done()
			if mf.reg.addr != "" {
				b.Models = modelExchange{f: &mf}
			}
			slog.Info("serving MCP on stdio", "principal", p.Identity(), "tenant", p.Tenant, "role", p.Role)
			return agentmcp.New(b, p).Run(ctx, &sdk.StdioTransport{})
		},
	}
	tf.add(c)
	lf.add(c)
	mf.reg.add(c)
	c.Flags().StringVar(&token, "token", os.Getenv("ACCORD_TOKEN"), "act as this API token's principal (default $ACCORD_TOKEN; none: the home's operator)")
	return c
}

// mcpPrincipal is --token's principal, or the home's operator: every
// tenant, approving as $USER.
func mcpPrincipal(ctx context.Context, token string) (policies.Principal, error) {
	if token == "" {
		name := os.Getenv("USER")
		if name == "" {
			name = "operator"
		}
		return policies.Principal{Tenant: "*", Role: policies.RoleAdmin, Name: name, ID: "operator"}, nil
	}
	store, err := openTenants(ctx)
	if err != nil {
		return policies.Principal{}, err
	}
	defer store.Close()
	p, err := store.Authenticate(ctx, token)
	if err != nil {
		return policies.Principal{}, cli.Usagef("--token: %w", err)
	}
	return p, nil
}

// agentBackend is the agent interface's backend over a home: the API's
// job system, the worker's logs and market (the same sellers and placement
// policies a negotiation uses), the ledger and the trust store. done
// closes the ledger.
func agentBackend(ctx context.Context, home string, jobs *apijobs.Jobs) (agentmcp.Backend, func(), error) {
	set, err := policies.LoadDir(filepath.Join(home, "policies"))
	if err != nil {
		return agentmcp.Backend{}, nil, fmt.Errorf("mcp: policies: %w", err)
	}
	provs, err := local.Sellers(local.Options{Home: home})
	if err != nil {
		return agentmcp.Backend{}, nil, err
	}
	poolStore := pools.Open(home)
	ledger, err := settlement.Open(ctx, settlement.ResolveDSN("", home))
	if err != nil {
		return agentmcp.Backend{}, nil, fmt.Errorf("mcp: ledger: %w", err)
	}
	b := agentmcp.Backend{
		Jobs: jobs, Documents: jobs, Logs: agentmcp.FileLogs{Home: home}, Statements: ledger,
		Quoter: agentmcp.BrokerQuoter{Broker: broker.Broker{
			Providers: func(context.Context) ([]market.Provider, error) {
				return append(append([]market.Provider(nil), provs...), providers.Pools(poolStore, slog.Default())...), nil
			},
			Placement: set.PlacementFilter,
		}},
		Trust: func(context.Context) (*provenance.TrustStore, error) {
			return provenance.LoadTrustStore(provenance.DefaultTrustPath(home))
		},
	}
	return b, func() { ledger.Close() }, nil
}

// modelExchange gives the agent interface `accord model search` and
// `inspect` over --registry.
type modelExchange struct{ f *modelFlags }

func (m modelExchange) Search(ctx context.Context, query string, limit int) (json.RawMessage, error) {
	q, err := search.ParseQuery(query)
	if err != nil {
		return nil, &agentmcp.ToolError{Class: cli.ClassUsage, ExitCode: cli.ExitUsage, Message: err.Error()}
	}
	x, done, err := m.f.open(ctx, false)
	if err != nil {
		return nil, err
	}
	defer done()
	ix, err := searchIndex(ctx, x)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"query": q.String(), "results": ix.Search(q, limit)})
}

func (m modelExchange) Inspect(ctx context.Context, ref string) (json.RawMessage, error) {
	x, done, err := m.f.open(ctx, false)
	if err != nil {
		return nil, err
	}
	defer done()
	mv, err := x.Registry.Inspect(ctx, ref)
	if cli.ClassOf(err) == cli.ClassNotFound {
		return nil, &agentmcp.ToolError{Class: cli.ClassNotFound, ExitCode: cli.ExitError, Message: fmt.Sprintf("model %s not found", ref)}
	}
	if err != nil {
		return nil, err
	}
	var types []string
	for _, a := range mv.Attachments {
		types = append(types, a.ArtifactType)
	}
	return json.Marshal(map[string]any{"ref": mv.Ref, "digest": mv.Digest, "manifest": mv.Manifest, "attachments": types})
}
