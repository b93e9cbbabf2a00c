package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/activities"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/services/billing"
	"github.com/accordmesh/accord/workers"
	"github.com/accordmesh/accord/workers/deployclient"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workflows"
)

func init() {
	cli.RegisterNotFound(deployclient.ErrNoDeployment)
	root.AddCommand(deployCmd())
}

// deployCmd is `accord deploy SPEC` and its subcommands.
func deployCmd() *cobra.Command {
	var tf temporalFlags
	var id string
	cmd := &cobra.Command{
		Use:   "deploy SPEC",
		Short: "Serve a model as a long-running endpoint (a spec with a \"## Service\" section)",
		Example: `  accord deploy examples/service.md
  accord deploy status sentiment
  accord deploy update sentiment examples/service-v2.md
  accord deploy rollback sentiment --reason "p99 too high"
  accord deploy stop sentiment`,
		Args: deployArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := deployclient.Load(args[0])
			if err != nil {
				return cli.InputErr(err)
			}
			ctx, cancel := signalContext()
			defer cancel()
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := deployclient.Deploy(ctx, c, s, id)
			if err != nil {
				return err
			}
			return cli.Print(cmd, st, func(w cli.Writer) {
				w.Printf("deployment %s started (workflow %s); follow it with `accord deploy status %s`\n", st.Deployment, st.WorkflowID, st.Deployment)
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&id, "id", "", "deployment name (default: the service's endpoint)")
	cmd.AddCommand(deployStatusCmd(), deployUpdateCmd(), deploySignalCmd("rollback", "Roll back the canary, or the last promotion", deployclient.Rollback),
		deploySignalCmd("stop", "Drain the endpoint, stop every replica and settle the open period", deployclient.Stop),
		deployLogsCmd(), deployHostCmd())
	return cmd
}

func deployStatusCmd() *cobra.Command {
	var tf temporalFlags
	cmd := &cobra.Command{
		Use: "status DEPLOYMENT",
		Example: `  accord deploy status sentiment
  accord deploy status sentiment --json`,
		Short: "Show a deployment's replicas, versions, traffic split, SLA so far and spend",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := deployclient.Status(ctx, c, args[0])
			if err != nil {
				return err
			}
			return cli.Print(cmd, st, func(w cli.Writer) { printDeployment(w, st) })
		},
	}
	tf.add(cmd)
	return cmd
}

func printDeployment(w cli.Writer, st workflows.DeploymentState) {
	w.Printf("deployment %s (%s) at http://%s\n", st.ID, st.Phase, st.Endpoint)
	w.Printf("  stable  %s %s%s\n", st.Stable.Label(), st.Stable.Version, servedModel(st.Stable.Model))
	if st.Canary != nil {
		w.Printf("  canary  %s %s at %d%%%s\n", st.Canary.Label(), st.Canary.Version, st.Routes.CanaryPercent, servedModel(st.Canary.Model))
	}
	for _, r := range st.Replicas {
		role := "stable"
		switch {
		case r.Canary:
			role = "canary"
		case r.Retiring:
			role = "retiring"
		}
		w.Printf("  replica %-28s %-8s %-8s ready=%-5v restarts=%d %s\n", r.ID, role, r.State, r.Ready, r.Restarts, r.Addr)
	}
	var reqs, errs int64
	breaches := 0
	for _, win := range st.Windows {
		reqs += win.Stats.Requests
		errs += win.Stats.Errors
		if win.Breached {
			breaches++
		}
	}
	w.Printf("  SLA     %d windows, %d breached, %d requests, %d failed\n", len(st.Windows), breaches, reqs, errs)
	w.Printf("  spend   %d %s in %d settled periods (model fees %d, SLA refunds %d, slashed %d); period %d holds %d\n",
		st.Spent, st.Currency, len(st.Settlements), st.ModelFees, st.Refunded, st.Slashed, st.Period, st.Held)
	if st.Attested > 0 {
		w.Printf("  attested %d events (accord receipt export %s -o receipt.json)\n", st.Attested, st.ID)
	}
}

func deployUpdateCmd() *cobra.Command {
	var tf temporalFlags
	cmd := &cobra.Command{
		Use:     "update DEPLOYMENT SPEC",
		Example: `  accord deploy update sentiment examples/service-v2.md`,
		Short:   "Roll out a new version through a canary (promoted or rolled back by its gates)",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := deployclient.Load(args[1])
			if err != nil {
				return cli.InputErr(err)
			}
			ctx, cancel := signalContext()
			defer cancel()
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := deployclient.Update(ctx, c, args[0], s); err != nil {
				return err
			}
			return cli.Print(cmd, map[string]any{"deployment": args[0], "update": s.Version}, func(w cli.Writer) {
				w.Printf("deployment %s: canary of %s starting\n", args[0], s.Version)
			})
		},
	}
	tf.add(cmd)
	return cmd
}

// deployArgs takes one SPEC; a word that is neither a subcommand nor a
// file is a usage error naming the subcommands, as for any group.
func deployArgs(c *cobra.Command, args []string) error {
	var subs []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			subs = append(subs, s.Name())
		}
	}
	switch {
	case len(args) == 0:
		return cli.Usagef("%s needs a subcommand or a SPEC: %s", c.CommandPath(), strings.Join(subs, ", "))
	case len(args) > 1:
		return cli.Usagef("%s takes one SPEC, got %d arguments (usage: accord deploy SPEC [flags])", c.CommandPath(), len(args))
	}
	if _, err := os.Stat(args[0]); err != nil && !strings.ContainsAny(args[0], "./") {
		return cli.Usagef("unknown command %q for %q and no such spec file; valid subcommands: %s", args[0], c.CommandPath(), strings.Join(subs, ", "))
	}
	return nil
}

func deploySignalCmd(verb, short string, send func(context.Context, client.Client, string, string) error) *cobra.Command {
	var tf temporalFlags
	var reason string
	cmd := &cobra.Command{
		Use:     verb + " DEPLOYMENT",
		Short:   short,
		Example: "  accord deploy " + verb + " sentiment --reason \"p99 too high\"",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := send(ctx, c, args[0], reason); err != nil {
				return err
			}
			return cli.Print(cmd, map[string]any{"deployment": args[0], verb: true, "reason": reason}, func(w cli.Writer) {
				w.Printf("deployment %s: %s requested\n", args[0], verb)
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().StringVar(&reason, "reason", "requested from the CLI", "why (recorded in the deployment's log)")
	return cmd
}

func deployLogsCmd() *cobra.Command {
	var tf temporalFlags
	var replica string
	var lf localFlags
	cmd := &cobra.Command{
		Use: "logs DEPLOYMENT",
		Example: `  accord deploy logs sentiment
  accord deploy logs sentiment --replica sentiment-r1-s0-g0`,
		Short: "Print a deployment's event log, or with --replica a replica's output (on its services host)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			if replica != "" {
				return replicaLogs(ctx, cmd, lf, args[0], replica)
			}
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := deployclient.Status(ctx, c, args[0])
			if err != nil {
				return err
			}
			return cli.Print(cmd, st.Events, func(w cli.Writer) {
				for _, e := range st.Events {
					w.Printf("%s %-9s %s\n", e.At.Format(time.RFC3339), e.Kind, e.Msg)
				}
			})
		},
	}
	tf.add(cmd)
	lf.add(cmd)
	cmd.Flags().StringVar(&replica, "replica", "", "a replica ID (from deploy status): print its output from this host's runtime")
	return cmd
}

// replicaLogs prints a replica's output from this machine's runtime.
func replicaLogs(ctx context.Context, cmd *cobra.Command, lf localFlags, dep, replica string) error {
	if !strings.HasPrefix(replica, dep+"-") {
		return cli.Usagef("replica %q is not one of deployment %s's", replica, dep)
	}
	home, err := cli.Home()
	if err != nil {
		return err
	}
	host, err := local.Open(ctx, lf.options(home))
	if err != nil {
		return err
	}
	defer host.Close()
	rc, err := host.Runtime.Logs(ctx, replica, false)
	if err != nil {
		return cli.NotFound(fmt.Errorf("deploy logs: %s: %w", replica, err))
	}
	defer rc.Close()
	_, err = io.Copy(cmd.OutOrStdout(), io.LimitReader(rc, 16<<20))
	return err
}

func deployHostCmd() *cobra.Command {
	var tf temporalFlags
	var lf localFlags
	var net services.Network
	var provider string
	var feeBP int64
	tun := workers.DefaultTuning()
	cmd := &cobra.Command{
		Use: "host",
		Example: `  accord deploy host --provider local --fee-bp 500
  accord deploy host --bridge accordsvc0 --subnet 10.88.0.0/24
  accord deploy host --registry 127.0.0.1:5000 --registry-plain-http   # services may serve registry models`,
		Short: "Run a services host: replicas in CNI namespaces on this machine's containerd, endpoint proxies, period billing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := cli.Home()
			if err != nil {
				return err
			}
			if net.DataDir == "" {
				net.DataDir = filepath.Join(home, "cni")
			}
			if err := net.Check(); err != nil {
				return cli.Usage(err)
			}
			if err := net.Available(); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			c, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			host, err := local.Open(ctx, lf.options(home))
			if err != nil {
				return err
			}
			defer host.Close()
			h := &services.Host{Runtime: host.Runtime, Network: net, Attestor: host.Recorder,
				Biller: &billing.Ledger{L: host.Ledger, Provider: provider, FeeBP: feeBP}}
			if x, ok := host.Activities.Models.(activities.Exchange); ok {
				// --registry: services may serve registry models.
				h.Models = activities.ServedModels{X: x.X}
			}
			w, err := workers.StartServices(c, h, tun)
			if err != nil {
				return err
			}
			defer w.Stop()
			if err := cli.Print(cmd, map[string]any{"status": "running", "queue": workflows.TaskQueueServices, "bridge": net.Bridge, "subnet": net.Subnet},
				func(wr cli.Writer) {
					wr.Printf("accord deploy host: polling %s; replicas on bridge %s (%s)\n", workflows.TaskQueueServices, net.Bridge, net.Subnet)
				}); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		},
	}
	tf.add(cmd)
	lf.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&net.Name, "network", "accord-svc", "CNI network name (also the namespace prefix)")
	fl.StringVar(&net.Bridge, "bridge", "accordsvc0", "host bridge for replicas")
	fl.StringVar(&net.Subnet, "subnet", "10.88.0.0/24", "replica subnet (host-local IPAM)")
	fl.StringVar(&net.PluginDir, "cni-plugins", services.DefaultPluginDir, "CNI plugin directory")
	fl.StringVar(&net.DataDir, "cni-data", "", "host-local lease directory (default HOME/cni)")
	fl.StringVar(&provider, "provider", "local", "ledger name of the provider these replicas run for")
	fl.Int64Var(&feeBP, "fee-bp", 0, "platform fee in basis points of each period's charge")
	tun.AddFlags(fl)
	return cmd
}

// servedModel describes a release's registry model for status.
func servedModel(p *services.ModelPin) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf(" serving %s (%s), %d %s per inference", p.Ref, p.Digest, p.Fee.Price, p.Fee.Currency)
}
