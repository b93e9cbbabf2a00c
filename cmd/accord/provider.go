package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/workers"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workflows"
)

func init() { providerCommand().AddCommand(providerServeCmd()) }

// providerServeFlags are `accord provider serve`'s options.
type providerServeFlags struct {
	name, key, artifacts, containerd string
	api, tokenFile                   string
	heartbeat                        time.Duration
	overcommit                       float64
	stake                            int64
	currency                         string
	hostInputs                       []string
	registry                         registryFlags
	logURL                           string
	insecure                         bool
}

func (f *providerServeFlags) check() error {
	switch {
	case names.Provider(f.name) != nil:
		return cli.Usage(names.Provider(f.name))
	case f.heartbeat < agents.MinHeartbeat || f.heartbeat > agents.MaxHeartbeat:
		return cli.Usagef("--heartbeat %s: want %s to %s", f.heartbeat, agents.MinHeartbeat, agents.MaxHeartbeat)
	case (f.api == "") != (f.tokenFile == ""):
		return cli.Usagef("--api and --token-file go together")
	case f.stake < 0:
		return cli.Usagef("--stake %d: want 0 or more", f.stake)
	case f.api == "" && f.artifacts == "":
		return cli.Usagef("--api and --token-file: the control plane's API (its artifact store and heartbeats) are required")
	case f.registry.addr != "" && f.logURL == "":
		return cli.Usagef("--registry needs --rekor-url: the agent verifies each model's signatures against the shared log")
	}
	return nil
}

func providerServeCmd() *cobra.Command {
	var tf temporalFlags
	var f providerServeFlags
	tun := workers.DefaultTuning()
	c := &cobra.Command{
		Use:   "serve --name NAME",
		Short: "Run a provider agent: this machine's runtime and key on its own task queue",
		Long: "serve runs provider NAME's agent on this machine: its own containerd (a private daemon under\n" +
			"--home unless --containerd names one) and signing key (--key, default HOME/keys/provider.key,\n" +
			"created when missing). It polls only the task queue accord-exec-NAME, where the job workflow\n" +
			"sends every execution activity of the tasks awarded to NAME, and signs their execution\n" +
			"attestations with its key; the control plane logs them once the key is trusted with\n" +
			"`accord keys trust KEY.pub --scope provider:NAME`.\n\n" +
			"With --api and --token-file (a token from `accord token create --role provider --name NAME`)\n" +
			"it publishes its profile (capabilities, prices, SLA terms, free capacity) every --heartbeat;\n" +
			"the market offers NAME only while its last heartbeat is at most 3 intervals old.\n\n" +
			"The same API is its artifact store: it reads the plans, sealed results, tenants' inputs and\n" +
			"images of the jobs awarded to it (GET /v1/blobs, every blob verified against its digest) and\n" +
			"pushes every output it collects (POST /v1/outputs), so the buyer's verifier and later jobs on\n" +
			"other machines read them by digest. --artifacts DIR instead reads and writes the control\n" +
			"plane's store directory directly: a shortcut for an agent on the control plane's machine.\n\n" +
			"With --registry and --rekor-url (the shared log: accord log serve or Rekor) it runs tasks that\n" +
			"use registry models: it fetches each model and verifies it itself before mounting it read-only,\n" +
			"the signatures against its own trust store (HOME/trust.json: the model owners' keys, scope\n" +
			"spec:OWNER, or the operator's, and the log's key, scope log) and their entries on the log.",
		Example: `  accord provider serve --name gpu-east --temporal-address cp.example.com:7233 \
      --api https://cp.example.com:8480 --token-file /etc/accord/provider.token

  # with registry models, verified against the shared log
  accord provider serve --name gpu-east --temporal-address cp.example.com:7233 \
      --api https://cp.example.com:8480 --token-file /etc/accord/provider.token \
      --registry registry.example.com:5000 --rekor-url https://log.example.com:3000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if err := tuning(cmd, &tun); err != nil {
				return err
			}
			home, err := cli.Home()
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			return runProviderAgent(ctx, cmd, home, &tf, &f, tun)
		},
	}
	tf.add(c)
	fl := c.Flags()
	fl.StringVar(&f.name, "name", "", "the provider's name (its queue is accord-exec-NAME, its trust scope provider:NAME)")
	fl.StringVar(&f.key, "key", "", "the agent's signing key (default HOME/keys/provider.key, created when missing)")
	fl.StringVar(&f.artifacts, "artifacts", "", "same-machine shortcut: the control plane's artifact store directory, instead of reaching it through --api")
	fl.StringVar(&f.containerd, "containerd", "", "existing containerd socket (default: a private daemon under the home directory)")
	fl.StringVar(&f.api, "api", "", "the control plane's API (http(s)://host:port) to publish heartbeats to")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the agent's API token (role provider)")
	fl.DurationVar(&f.heartbeat, "heartbeat", 10*time.Second, "how often to publish the profile")
	fl.Float64Var(&f.overcommit, "overcommit", 1, "offer this many times the host's CPUs and memory")
	fl.StringVar(&f.currency, "currency", "USD", "currency the agent prices in")
	fl.Int64Var(&f.stake, "stake", 0, "most of the provider's bond at risk per job (its SLA offer; minor units): slashed on an SLA breach or a lost spot check")
	fl.StringArrayVar(&f.hostInputs, "host-inputs", nil, "directory under which specs may mount host paths and import oci-archive: images (repeatable; default none)")
	f.registry.add(c)
	fl.StringVar(&f.logURL, "rekor-url", "", "the shared transparency log (Rekor v1 or accord log serve), read to verify registry models; its key must be trusted here for scope log")
	fl.BoolVar(&f.insecure, "insecure", false, "allow a plain http:// --rekor-url (no TLS: a log on this machine or a test)")
	tun.AddFlags(fl)
	return c
}

// runProviderAgent opens the agent, polls its queue and beats until ctx ends.
func runProviderAgent(ctx context.Context, cmd *cobra.Command, home string, tf *temporalFlags, f *providerServeFlags, tun workers.Tuning) error {
	var token string
	if f.tokenFile != "" {
		b, err := bounded.ReadFile(f.tokenFile, 4<<10)
		if err != nil {
			return fmt.Errorf("provider serve: token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	o := local.AgentOptions{
		Home: home, Name: f.name, ContainerdAddress: f.containerd, KeyPath: f.key, ArtifactsDir: f.artifacts,
		API: storeAPI(f), Token: token,
		Currency: f.currency, Overcommit: f.overcommit, HostInputs: f.hostInputs, Stake: f.stake,
		LogURL: f.logURL, LogInsecure: f.insecure,
	}
	f.registry.applyAgent(&o)
	agent, err := local.OpenAgent(ctx, o)
	if err != nil {
		return err
	}
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	queue := workflows.ExecQueue(f.name)
	w, err := workers.Start(c, agent.Activities, workers.Options{Queues: []string{queue}, Tuning: tun})
	if err != nil {
		return err
	}
	defer w.Stop()
	var pub *agents.Client
	if f.api != "" {
		pub = &agents.Client{BaseURL: f.api, Token: token}
		// The first heartbeat goes out once the queue is polled, so that
		// a job awarded at once finds the agent there.
		beat(ctx, pub, agent, f.heartbeat)
	}
	if err := cli.Print(cmd, map[string]any{"status": "running", "provider": f.name, "queue": queue,
		"key_id": agent.Key.ID(), "heartbeat": f.api != ""}, func(wr cli.Writer) {
		wr.Printf("accord provider %s: polling %s on %s, key %s\n", f.name, queue, tf.address, agent.Key.ID())
	}); err != nil {
		return err
	}
	if pub == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(f.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			beat(ctx, pub, agent, f.heartbeat)
		}
	}
}

// beat publishes the agent's profile once; a failure is logged and the
// next tick tries again (the control plane withdraws the agent's offers
// after three missed intervals).
func beat(ctx context.Context, pub *agents.Client, a *local.Agent, interval time.Duration) {
	prof, err := a.Profile(ctx)
	if err != nil {
		slog.Warn("provider profile", "error", err)
		return
	}
	bctx, cancel := context.WithTimeout(ctx, interval)
	defer cancel()
	if _, err := pub.Beat(bctx, a.Name, agents.Heartbeat{Runtime: a.Runtime.Name(), Profile: prof,
		PublicKey: string(a.Key.PublicPEM()), Interval: interval}); err != nil && ctx.Err() == nil {
		slog.Warn("provider heartbeat", "error", err)
	}
}

// storeAPI is the API the agent's artifact store is reached through: none
// with the --artifacts shortcut.
func storeAPI(f *providerServeFlags) string {
	if f.artifacts != "" {
		return ""
	}
	return f.api
}
