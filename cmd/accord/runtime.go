package main

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/runtimes/containerd"
	"github.com/accordmesh/accord/workers/stack"
)

func init() {
	rt := &cobra.Command{Use: "runtime", Short: "Manage the private containerd daemon under Accord's home",
		Example: `  accord runtime stop          # end the private containerd a crashed worker left running`}
	rt.AddCommand(runtimeStopCmd())
	root.AddCommand(rt)
}

// daemonGrace is how long a stopping daemon gets before SIGKILL.
const daemonGrace = 10 * time.Second

func runtimeStopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the private containerd daemon left running under Accord's home",
		Long: "stop ends the private containerd daemon that accord run, dev or worker started under\n" +
			"$ACCORD_HOME/containerd (it outlives them by design, so that tasks survive a worker crash).\n" +
			"Task processes already running keep running; stop workers first.",
		Example: "  accord runtime stop\n  accord runtime stop --home /var/lib/accord --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := cli.HomePath()
			if err != nil {
				return err
			}
			dir := containerd.DaemonDir(filepath.Join(home, "containerd"))
			pid, running := containerd.RunningDaemon(dir)
			if running {
				if err := containerd.StopDaemon(dir, daemonGrace); err != nil {
					return err
				}
			}
			status := "not_running"
			if running {
				status = "stopped"
			}
			return cli.Print(cmd, map[string]any{"status": status, "pid": pid, "dir": dir}, func(w cli.Writer) {
				if running {
					w.Printf("stopped containerd (pid %d) in %s\n", pid, dir)
				} else {
					w.Printf("no containerd daemon running in %s\n", dir)
				}
			})
		},
	}
}

// stopStack stops st and then, unless keep, the private containerd daemon
// its runtime started (one it found running stays).
func stopStack(st *stack.Stack, keep bool) {
	var d *containerd.Daemon
	if st.Local != nil {
		if r, ok := st.Local.Runtime.(interface{ StartedDaemon() *containerd.Daemon }); ok {
			d = r.StartedDaemon()
		}
	}
	st.Stop()
	if d == nil || keep {
		return
	}
	if err := containerd.StopDaemon(d.Dir, daemonGrace); err != nil {
		slog.Warn("stop containerd", "dir", d.Dir, "err", err)
		return
	}
	slog.Debug("stopped the containerd daemon this command started", "pid", d.PID)
}
