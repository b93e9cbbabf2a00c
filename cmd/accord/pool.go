package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/runtimes/nomad"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
)

func init() {
	poolCmd := &cobra.Command{Use: "pool", Short: "Attach, list and detach compute pools (Nomad clusters)", Example: `  accord pool attach nomad gpu-east --address http://127.0.0.1:4646
  accord pool list`}
	poolCmd.AddCommand(poolAttachCmd(), poolListCmd(), poolDetachCmd())
	root.AddCommand(poolCmd)
}

func poolStore() (*pools.Store, error) {
	home, err := cli.HomePath() // the store creates its directory when it writes
	if err != nil {
		return nil, err
	}
	return pools.Open(home), nil
}

func poolAttachCmd() *cobra.Command {
	var cfg nomad.Config
	var datacenter, pricing string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "attach nomad NAME --address URL",
		Short: "Attach a Nomad cluster as a pool (validated by contacting it)",
		Example: `  accord pool attach nomad gpu-east --address http://127.0.0.1:4646 --pricing prices.yaml
  accord pool attach nomad gpu-west --address https://nomad.example.com:4646 --token "$NOMAD_TOKEN" --datacenter dc1,dc2`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != pools.KindNomad {
				return cli.WithCode(cli.ExitUsage, fmt.Errorf("unknown pool kind %q (have %q)", args[0], pools.KindNomad))
			}
			if cfg.Address == "" {
				return cli.WithCode(cli.ExitUsage, errors.New("--address is required"))
			}
			if cfg.Token == "" {
				cfg.Token = os.Getenv("NOMAD_TOKEN")
			}
			if datacenter != "" {
				cfg.Datacenters = strings.Split(datacenter, ",")
			}
			st, err := poolStore()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			sum, err := pools.Attach(ctx, st, args[1], cfg, pricing)
			if err != nil {
				if errors.Is(err, pools.ErrInvalid) || errors.Is(err, nomad.ErrConfig) || errors.Is(err, pools.ErrExists) {
					return cli.WithCode(cli.ExitUsage, err)
				}
				return err
			}
			return cli.Print(cmd, sum, func(w cli.Writer) {
				w.Printf("attached pool %s (%s): ", sum.Name, sum.Address)
				printSummary(w, sum)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Address, "address", "", "Nomad HTTP API address, e.g. http://127.0.0.1:4646")
	f.StringVar(&cfg.Token, "token", "", "Nomad ACL token (default $NOMAD_TOKEN); stored in pools.json with mode 0600")
	f.StringVar(&cfg.Region, "region", "", "Nomad region")
	f.StringVar(&cfg.Namespace, "namespace", "", "Nomad namespace for Accord's jobs (default \"default\")")
	f.StringVar(&cfg.NodePool, "node-pool", "", "Nomad node pool whose nodes Accord may sell (default \"default\")")
	f.StringVar(&datacenter, "datacenter", "", "datacenter(s), comma-separated (default all)")
	f.StringVar(&cfg.Driver, "driver", "", "task driver: docker (default) or exec")
	f.StringVar(&cfg.ArtifactBase, "artifact-base", "", "http(s) URL under which Nomad clients download oci-archive images by file name")
	f.StringVar(&pricing, "pricing", "", "price list (YAML or JSON) the pool's provider agent bids with")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the cluster to answer")
	return cmd
}

func poolListCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pools with capacity, free GPUs by model and health",
		Example: `  accord pool list
  accord pool list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := poolStore()
			if err != nil {
				return err
			}
			list, err := st.List()
			if err != nil {
				return err
			}
			out := struct {
				Pools []pools.Summary `json:"pools"`
			}{Pools: []pools.Summary{}}
			for _, p := range list {
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				out.Pools = append(out.Pools, pools.Describe(ctx, p))
				cancel()
			}
			return cli.Print(cmd, out, func(w cli.Writer) {
				if len(out.Pools) == 0 {
					w.Printf("no pools attached (accord pool attach nomad NAME --address URL)\n")
					return
				}
				for _, s := range out.Pools {
					w.Printf("%-16s %-6s %-11s %s\n  ", s.Name, s.Kind, s.Health, s.Address)
					printSummary(w, s)
				}
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for each pool to answer")
	return cmd
}

func printSummary(w cli.Writer, s pools.Summary) {
	w.Printf("%d/%d nodes schedulable, %d GPUs (%d healthy, %d free), %d MHz CPU and %d MB memory free, %d task(s) running",
		s.SchedulableNodes, s.Nodes, s.GPUs, s.HealthyGPUs, s.FreeGPUs, s.FreeCPUMHz, s.FreeMemoryMB, s.RunningTasks)
	if s.Draining {
		w.Printf(", draining")
	}
	w.Printf("\n")
	models := make([]string, 0, len(s.FreeGPUsByModel))
	for m := range s.FreeGPUsByModel {
		models = append(models, m)
	}
	sort.Strings(models)
	for _, m := range models {
		w.Printf("    free %-28s %d\n", m, s.FreeGPUsByModel[m])
	}
	if s.Error != "" {
		w.Printf("    %s\n", s.Error)
	}
}

func poolDetachCmd() *cobra.Command {
	var drain bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "detach NAME",
		Short: "Detach a pool (refuses while tasks run there unless --drain)",
		Example: `  accord pool detach gpu-east
  accord pool detach gpu-east --drain --timeout 2h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := poolStore()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := pools.Detach(ctx, st, args[0], drain, 5*time.Second); err != nil {
				return err
			}
			out := struct {
				Detached string `json:"detached"`
				Drained  bool   `json:"drained"`
			}{args[0], drain}
			return cli.Print(cmd, out, func(w cli.Writer) { w.Printf("detached pool %s\n", args[0]) })
		},
	}
	cmd.Flags().BoolVar(&drain, "drain", false, "take no new tasks, wait for running ones to finish, then detach")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long --drain waits")
	return cmd
}
