package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement/money"
	"github.com/accordmesh/accord/specs"
)

func init() {
	policy := &cobra.Command{Use: "policy", Short: "Try admission, placement and audit policies", Example: `  accord policy test policy.yaml --input examples/quickstart.md`}
	policy.AddCommand(newPolicyTestCmd())
	tenant := &cobra.Command{Use: "tenant", Short: "Manage tenants, their quotas and trusted signers", Example: `  accord tenant put demo --spend-quota 1000.00
  accord tenant list`}
	tenant.AddCommand(newTenantPutCmd(), newTenantListCmd())
	token := &cobra.Command{Use: "token", Short: "Issue, list and revoke API tokens for accord serve", Example: `  accord token create --tenant demo --name alice@example.com --ttl 720h
  accord token list
  accord token revoke tok_0123456789ab`}
	token.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
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

// readTenants calls read with the tenancy store when one exists; reading
// creates no store.
func readTenants(ctx context.Context, read func(*policies.Store) error) error {
	home, err := cli.HomePath()
	if err != nil {
		return err
	}
	if _, err := os.Stat(policies.StorePath(home)); err != nil {
		return nil
	}
	st, err := openTenants(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return read(st)
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
	var currency, spendQuota, period string
	var gpuHours float64
	var requireSigned bool
	var signers []string
	c := &cobra.Command{
		Use:   "put NAME",
		Short: "Create a tenant, or update only the settings given",
		Long: "put creates tenant NAME with the flags given and defaults for the rest, or, when it exists,\n" +
			"changes only the flags given and keeps every other setting.",
		Example: `  accord tenant put demo --spend-quota 1000.00 --currency USD --period month
  accord tenant put demo --gpu-hours-quota 5          # changes only the GPU-hour quota
  accord tenant put demo --require-signed --signer sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := names.Tenant(args[0]); err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			st, err := openTenants(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			t, err := st.Tenant(cmd.Context(), args[0])
			if errors.Is(err, policies.ErrUnknownTenant) {
				t, err = policies.Tenant{Name: args[0], Currency: "USD", Period: "month"}, nil
			}
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("currency") {
				t.Currency = currency
			}
			if f.Changed("spend-quota") {
				if t.SpendQuota, err = parseMoney(cmd, spendQuota, &t.Currency); err != nil {
					return err
				}
			}
			if f.Changed("gpu-hours-quota") {
				t.GPUHoursQuota = gpuHours
			}
			if f.Changed("period") {
				t.Period = period
			}
			if f.Changed("require-signed") {
				t.RequireSigned = requireSigned
			}
			if f.Changed("signer") {
				t.Signers = signers
			}
			if err := checkSigners(t); err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			if err := st.PutTenant(cmd.Context(), t); err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			got, err := st.Tenant(cmd.Context(), t.Name)
			if err != nil {
				return err
			}
			return cli.Print(cmd, viewTenant(got, nil), func(w cli.Writer) {
				w.Printf("tenant %s saved: %s\n", got.Name, describeTenant(got))
			})
		},
	}
	f := c.Flags()
	f.StringVar(&currency, "currency", "USD", "currency of the spend quota")
	f.StringVar(&spendQuota, "spend-quota", "0", "spend per period in major units, e.g. 500 or 500.00 (0: unlimited)")
	f.Float64Var(&gpuHours, "gpu-hours-quota", 0, "GPU-hours per period (0: unlimited)")
	f.StringVar(&period, "period", "month", "quota period: day, week, month or none")
	f.BoolVar(&requireSigned, "require-signed", false, "reject specs not signed by one of --signer (or a key trusted for spec:NAME)")
	f.StringSliceVar(&signers, "signer", nil, "ID (sha256:...) of a key trusted to sign this tenant's specs (repeatable; see accord keys list)")
	return c
}

// checkSigners validates a tenant's signer key IDs, and that a tenant that
// requires signed specs can get one: it names signers, or the trust store
// has a key for its specs.
func checkSigners(t policies.Tenant) error {
	for _, s := range t.Signers {
		if err := names.KeyID(s); err != nil {
			return fmt.Errorf("--signer: %w", err)
		}
	}
	if !t.RequireSigned || len(t.Signers) > 0 {
		return nil
	}
	ts, _, err := loadTrust()
	if err != nil {
		return err
	}
	if len(ts.KeysFor(provenance.ScopeSpecPrefix+t.Name)) == 0 {
		return fmt.Errorf("--require-signed: tenant %s has no signer: pass --signer KEY_ID, or trust a key with accord keys trust FILE --scope spec:%s", t.Name, t.Name)
	}
	return nil
}

// tenantView is a tenant as the CLI prints it with --json: money in
// integer minor units under names that say so.
type tenantView struct {
	Name            string     `json:"name"`
	Currency        string     `json:"currency"`
	SpendQuotaMinor int64      `json:"spend_quota_minor"`
	GPUHoursQuota   float64    `json:"gpu_hours_quota"`
	Period          string     `json:"period"`
	RequireSigned   bool       `json:"require_signed"`
	Signers         []string   `json:"signers"`
	Usage           *usageView `json:"usage,omitempty"`
}

type usageView struct {
	PeriodStart         string  `json:"period_start"`
	SpendMinor          int64   `json:"spend_minor"`
	SpendRemainingMinor int64   `json:"spend_remaining_minor"` // -1 when unlimited
	GPUHours            float64 `json:"gpu_hours"`
	GPUHoursRemaining   float64 `json:"gpu_hours_remaining"`
}

func viewTenant(t policies.Tenant, u *policies.Usage) tenantView {
	v := tenantView{Name: t.Name, Currency: t.Currency, SpendQuotaMinor: t.SpendQuota, GPUHoursQuota: t.GPUHoursQuota,
		Period: t.Period, RequireSigned: t.RequireSigned, Signers: append([]string{}, t.Signers...)}
	if u != nil {
		v.Usage = &usageView{PeriodStart: u.PeriodStart, SpendMinor: u.Spend, SpendRemainingMinor: u.SpendRemaining,
			GPUHours: u.GPUHours, GPUHoursRemaining: u.GPUHoursRemaining}
	}
	return v
}

func describeTenant(t policies.Tenant) string {
	spend := "unlimited"
	if t.SpendQuota > 0 {
		spend = formatMoney(t.SpendQuota, t.Currency)
	}
	gpu := "unlimited"
	if t.GPUHoursQuota > 0 {
		gpu = fmt.Sprintf("%.2f", t.GPUHoursQuota)
	}
	signed := "no"
	if t.RequireSigned {
		signed = "required"
		if len(t.Signers) > 0 {
			signed += " (" + strings.Join(t.Signers, ", ") + ")"
		}
	}
	return fmt.Sprintf("spend %s, gpu-hours %s per %s, signing %s", spend, gpu, t.Period, signed)
}

func newTenantListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tenants with their quota usage",
		Example: `  accord tenant list
  accord tenant list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows := []tenantView{}
			err := readTenants(cmd.Context(), func(st *policies.Store) error {
				ts, err := st.Tenants(cmd.Context())
				if err != nil {
					return err
				}
				for _, t := range ts {
					u, err := st.Usage(cmd.Context(), t.Name)
					if err != nil {
						return err
					}
					rows = append(rows, viewTenant(t, &u))
				}
				return nil
			})
			if err != nil {
				return err
			}
			return cli.Print(cmd, map[string]any{"tenants": rows}, func(w cli.Writer) {
				if len(rows) == 0 {
					w.Printf("no tenants (create one: accord tenant put NAME --spend-quota 500.00 --currency USD)\n")
				}
				for _, r := range rows {
					spend := "unlimited"
					if r.SpendQuotaMinor > 0 {
						spend = money.FormatNumber(r.SpendQuotaMinor, r.Currency)
					}
					gpu := "unlimited"
					if r.GPUHoursQuota > 0 {
						gpu = fmt.Sprintf("%.2f", r.GPUHoursQuota)
					}
					w.Printf("%-20s spend %s/%s %s  gpu-hours %.2f/%s  per %s  signed=%v\n", r.Name,
						money.FormatNumber(r.Usage.SpendMinor, r.Currency), spend, r.Currency, r.Usage.GPUHours, gpu, r.Period, r.RequireSigned)
				}
			})
		},
	}
}

func newTokenCreateCmd() *cobra.Command {
	var p policies.Principal
	var role string
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "create --tenant T [--role tenant|auditor|admin|provider] [--name WHO] [--ttl 720h]",
		Short: "Issue an API token (printed once; only its hash is stored)",
		Long: "create issues a bearer token for accord serve. The token is printed once; the server keeps only\n" +
			"its sha256 and a public ID (tok_...) that `accord token list` shows and `accord token revoke`\n" +
			"takes. --name is the holder's identity, recorded on approvals and matched against a spec's\n" +
			"approval.approvers (default TENANT/ID). The token expires after --ttl (default 90 days).",
		Example: `  accord token create --tenant demo --name alice@example.com
  accord token create --tenant demo --name ci --ttl 720h
  accord token create --tenant '*' --role auditor --json
  accord token create --role provider --name gpu-east   # a provider agent's heartbeat token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p.Role = policies.Role(role)
			st, err := openTenants(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			tok, err := st.CreateToken(cmd.Context(), p, policies.WithTTL(ttl))
			switch {
			case errors.Is(err, policies.ErrUnknownTenant):
				return cli.NotFound(err)
			case errors.Is(err, policies.ErrTokenRequest):
				return cli.Usage(err)
			case err != nil:
				return err
			}
			info, err := st.Token(cmd.Context(), policies.TokenID(tok))
			if err != nil {
				return err
			}
			return cli.Print(cmd, tokenCreated{tokenView: viewToken(info), Token: tok}, func(w cli.Writer) {
				w.Printf("%s\n", tok)
			})
		},
	}
	c.Flags().StringVar(&p.Tenant, "tenant", "", `tenant the token acts for ("*" for an organisation-wide auditor)`)
	c.Flags().StringVar(&role, "role", "tenant", "tenant, auditor, admin or provider (a provider agent: --name is the provider, no --tenant)")
	c.Flags().StringVar(&p.Name, "name", "", "the holder's identity, recorded on approvals (default TENANT/ID)")
	c.Flags().DurationVar(&ttl, "ttl", policies.DefaultTokenTTL, "how long the token is valid, e.g. 720h")
	return c
}

// tokenView is a token as the CLI shows it: never its secret.
type tokenView struct {
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	Role     string `json:"role"`
	Name     string `json:"name"`
	Created  string `json:"created"`
	Expires  string `json:"expires"`
	LastUsed string `json:"last_used,omitempty"`
	Expired  bool   `json:"expired"`
}

// tokenCreated adds the secret, shown once, when a token is created.
type tokenCreated struct {
	tokenView
	Token string `json:"token"`
}

func viewToken(t policies.TokenInfo) tokenView {
	v := tokenView{ID: t.ID, Tenant: t.Tenant, Role: string(t.Role), Name: t.Name,
		Created: t.Created.Format(time.RFC3339), Expires: t.Expires.Format(time.RFC3339), Expired: !time.Now().Before(t.Expires)}
	if !t.LastUsed.IsZero() {
		v.LastUsed = t.LastUsed.Format(time.RFC3339)
	}
	return v
}

func newTokenListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List API tokens (IDs, never secrets)",
		Example: `  accord token list
  accord token list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows := []tokenView{}
			err := readTenants(cmd.Context(), func(st *policies.Store) error {
				all, err := st.Tokens(cmd.Context())
				for _, t := range all {
					rows = append(rows, viewToken(t))
				}
				return err
			})
			if err != nil {
				return err
			}
			return cli.Print(cmd, map[string]any{"tokens": rows}, func(w cli.Writer) {
				if len(rows) == 0 {
					w.Printf("no tokens (issue one: accord token create --tenant NAME)\n")
				}
				for _, r := range rows {
					state := "expires " + r.Expires
					if r.Expired {
						state = "EXPIRED " + r.Expires
					}
					used := "never used"
					if r.LastUsed != "" {
						used = "last used " + r.LastUsed
					}
					w.Printf("%s  %-12s %-8s %-24s created %s  %s  %s\n", r.ID, r.Tenant, r.Role, r.Name, r.Created, state, used)
				}
			})
		},
	}
}

func newTokenRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token at once",
		Example: `  accord token revoke tok_0123456789ab
  accord token revoke tok_0123456789ab --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openTenants(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RevokeToken(cmd.Context(), args[0]); errors.Is(err, policies.ErrNoSuchToken) {
				return cli.NotFound(fmt.Errorf("%w (see accord token list)", err))
			} else if err != nil {
				return err
			}
			return cli.Print(cmd, map[string]string{"id": args[0], "status": "revoked"}, func(w cli.Writer) {
				w.Printf("token %s revoked\n", args[0])
			})
		},
	}
}
