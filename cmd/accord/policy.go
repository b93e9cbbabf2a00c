package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/specs"
)

func init() {
	policy := &cobra.Command{Use: "policy", Short: "Try admission, placement and audit policies", Example: `  accord policy test policy.yaml --input examples/quickstart.md`}
	policy.AddCommand(newPolicyTestCmd())
	tenant := &cobra.Command{Use: "tenant", Short: "Manage tenants, their quotas and trusted signers", Example: `  accord tenant put demo --spend-quota 100000
  accord tenant list`}
	tenant.AddCommand(newTenantPutCmd(), newTenantListCmd())
	token := &cobra.Command{Use: "token", Short: "Issue API tokens for accord serve", Example: `  accord token create --tenant demo`}
	token.AddCommand(newTokenCreateCmd())
	root.AddCommand(policy, tenant, token)
}

// policyDir is where the local stack and the server read policies from.
func policyDir() (string, error) {
	home, err := cli.Home()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "policies"), nil
}

// openTenants opens the tenancy store under Accord's home.
func openTenants(ctx context.Context) (*policies.Store, error) {
	home, err := cli.Home()
	if err != nil {
		return nil, err
	}
	return policies.OpenStore(ctx, policies.StorePath(home))
}

func newPolicyTestCmd() *cobra.Command {
	var input, stage, tenant string
	c := &cobra.Command{
		Use:   "test POLICY --input FILE",
		Short: "Evaluate a policy file against an input",
		Long: "test compiles POLICY (compile errors are reported as file:line:col) and evaluates its rules of\n" +
			"--stage against --input: a JSON object of the stage's variables (spec, plan, tenant, signer, images\n" +
			"for admission; spec, provider for placement; job, stages, attestations for audit), or a spec (.md),\n" +
			"from which the admission variables are built with an unlimited quota. Exits 4 when denied.",
		Example: `  accord policy test policies/gpu-cap.yaml --input examples/quickstart.md
  accord policy test policies/eu-only.yaml --stage placement --input bid.json
  accord policy test policies/audit.yaml --stage audit --input job.json --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := policies.ParseStage(stage)
			if err != nil {
				return cli.Usagef("--stage: %w", err)
			}
			p, err := policies.Load(args[0])
			if err != nil {
				return cli.InputErr(err)
			}
			vars, err := policyInput(input, st)
			if err != nil {
				return cli.InputErr(err)
			}
			if tenant == "" {
				tenant = p.Tenant
			}
			res := (&policies.Set{Policies: []*policies.Policy{p}}).Evaluate(st, tenant, vars)
			if err := cli.Print(cmd, res, func(w cli.Writer) {
				for _, d := range res.Decisions {
					verdict := "allow"
					if !d.Allowed {
						verdict = "deny: " + d.Reason
					}
					w.Printf("%s/%s (%s v%d): %s\n", d.Policy, d.Rule, d.Stage, d.Version, verdict)
				}
				if len(res.Decisions) == 0 {
					w.Printf("no %s rules apply\n", stage)
				}
			}); err != nil {
				return err
			}
			if !res.Allowed {
				return cli.WithCode(cli.ExitPolicy, res.Err())
			}
			return nil
		},
	}
	c.Flags().StringVar(&input, "input", "", "JSON variables or a spec (.md)")
	c.Flags().StringVar(&stage, "stage", "admission", "admission, placement or audit")
	c.Flags().StringVar(&tenant, "tenant", "", "tenant the subject belongs to (default: the policy's)")
	c.MarkFlagRequired("input")
	return c
}

// policyInput reads --input for stage: a spec gives the admission
// variables; a JSON object may hold only the stage's variables.
func policyInput(path string, stage policies.Stage) (map[string]any, error) {
	if strings.HasSuffix(path, ".md") {
		if stage != policies.StageAdmission {
			return nil, fmt.Errorf("--input %s is a spec, which gives the admission variables; --stage %s wants a JSON object of %s",
				path, stage, strings.Join(stage.Variables(), ", "))
		}
		plan, err := specs.LoadPlan(path)
		if err != nil {
			return nil, err
		}
		view := policies.TenantView{Name: plan.Tenant, SpendRemaining: -1, GPUHoursRemaining: -1, Currency: plan.Currency}
		return policies.AdmissionInput(plan, view, policies.Signer{}), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var vars map[string]any
	if err := json.Unmarshal(data, &vars); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object of variables: %w", path, err)
	}
	known := stage.Variables()
	for name := range vars {
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("%s: variable %q is not one of the %s stage's: %s", path, name, stage, strings.Join(known, ", "))
		}
	}
	return vars, nil
}

func newTenantPutCmd() *cobra.Command {
	var t policies.Tenant
	c := &cobra.Command{
		Use:   "put NAME",
		Short: "Create or update a tenant",
		Example: `  accord tenant put demo --spend-quota 100000 --currency USD --period month
  accord tenant put demo --require-signed --signer sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t.Name = args[0]
			st, err := openTenants(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.PutTenant(cmd.Context(), t); err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			got, err := st.Tenant(cmd.Context(), t.Name)
			if err != nil {
				return err
			}
			return cli.Print(cmd, got, func(w cli.Writer) { w.Printf("tenant %s saved\n", got.Name) })
		},
	}
	f := c.Flags()
	f.StringVar(&t.Currency, "currency", "USD", "currency of the spend quota")
	f.Int64Var(&t.SpendQuota, "spend-quota", 0, "spend per period in minor units (0: unlimited)")
	f.Float64Var(&t.GPUHoursQuota, "gpu-hours-quota", 0, "GPU-hours per period (0: unlimited)")
	f.StringVar(&t.Period, "period", "month", "quota period: day, week, month or none")
	f.BoolVar(&t.RequireSigned, "require-signed", false, "reject specs not signed by a trusted key")
	f.StringSliceVar(&t.Signers, "signer", nil, "fingerprint of a key trusted to sign this tenant's specs (repeatable)")
	return c
}

func newTenantListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tenants with their quota usage",
		Example: `  accord tenant list
  accord tenant list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openTenants(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ts, err := st.Tenants(cmd.Context())
			if err != nil {
				return err
			}
			type row struct {
				policies.Tenant
				Usage policies.Usage `json:"usage"`
			}
			rows := []row{}
			for _, t := range ts {
				u, err := st.Usage(cmd.Context(), t.Name)
				if err != nil {
					return err
				}
				rows = append(rows, row{t, u})
			}
			return cli.Print(cmd, map[string]any{"tenants": rows}, func(w cli.Writer) {
				for _, r := range rows {
					w.Printf("%-20s spend %d/%d %s  gpu-hours %.2f/%.2f  per %s  signed=%v\n", r.Name,
						r.Usage.Spend, r.SpendQuota, r.Currency, r.Usage.GPUHours, r.GPUHoursQuota, r.Period, r.RequireSigned)
				}
			})
		},
	}
}

func newTokenCreateCmd() *cobra.Command {
	var p policies.Principal
	var role string
	c := &cobra.Command{
		Use:   "create --tenant T [--role tenant|auditor|admin]",
		Short: "Issue an API token (printed once; only its hash is stored)",
		Example: `  accord token create --tenant demo --name ci
  accord token create --tenant '*' --role auditor`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p.Role = policies.Role(role)
			st, err := openTenants(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			tok, err := st.CreateToken(cmd.Context(), p)
			if err != nil {
				return err
			}
			return cli.Print(cmd, map[string]string{"token": tok, "tenant": p.Tenant, "role": role}, func(w cli.Writer) {
				w.Printf("%s\n", tok)
			})
		},
	}
	c.Flags().StringVar(&p.Tenant, "tenant", "", `tenant the token acts for ("*" for an organisation-wide auditor)`)
	c.Flags().StringVar(&role, "role", "tenant", "tenant, auditor or admin")
	c.Flags().StringVar(&p.Name, "name", "", "who holds the token (recorded on approvals)")
	return c
}
