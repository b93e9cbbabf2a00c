package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/internal/names"
)

func init() { root.AddCommand(dataCmd()) }

// defaultDataTenant is whom `accord data push` grants when neither
// --tenant nor $ACCORD_TENANT says: the quickstart's tenant. (`accord run`
// has no default: a spec names its tenant, and its inputs must be granted
// to that tenant.)
const defaultDataTenant = "demo"

// defaultMaxPush bounds a push unless --max-size says otherwise, the same
// as `accord serve --max-data`.
const defaultMaxPush = "1GiB"

func dataCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "data",
		Short: "Push tenants' input files into the artifact store",
		Example: `  accord data push weights.bin --tenant demo
  accord data ls --tenant demo`,
	}
	c.AddCommand(dataPushCmd(), dataLsCmd())
	return c
}

// pushResult is `accord data push --json`'s line.
type pushResult struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Kind   string `json:"kind"`
	Tenant string `json:"tenant"`
}

func dataPushCmd() *cobra.Command {
	var tenant, maxSize string
	c := &cobra.Command{
		Use:   "push FILE|DIR",
		Short: "Store a file or directory as a content-addressed artifact and grant it to a tenant",
		Example: `  accord data push weights.bin
  accord data push ./dataset --tenant acme-research --max-size 20GiB
  accord data push corpus.txt --json   # last line: {"digest":"sha256:…","size":N,"kind":"file","tenant":"demo"}`,
		Long: "push copies FILE, or every regular file under DIR and a tree manifest listing them, into the\n" +
			"artifact store under --home, prints its digest and grants it to --tenant. A spec of that\n" +
			"tenant then names it as an input: inputs: [{name: x, artifact: sha256:…}]; the provider\n" +
			"copies it out of the store and checks every digest before it mounts it.\n\n" +
			"A directory may hold only regular files and directories: symbolic links, devices, FIFOs,\n" +
			"sockets and names with control characters or backslashes are refused, as is more than\n" +
			"--max-size bytes in all (units B, KiB, MiB, GiB, TiB). Modes keep only executable or not.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := names.Tenant(tenant); err != nil {
				return cli.Usagef("--tenant: %w", err)
			}
			limit, err := parseSize(maxSize)
			if err != nil {
				return cli.Usagef("--max-size: %w", err)
			}
			home, err := cli.Home()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			store := artifacts.Local{Dir: artifacts.DefaultDir(home), Progress: progressLog(args[0])}
			res, err := push(ctx, store, args[0], tenant, limit)
			if err != nil {
				return err
			}
			return cli.Print(cmd, res, func(w cli.Writer) {
				w.Printf("%s\n", res.Digest)
				w.Printf("  %s, %s, granted to tenant %s\n", res.Kind, humanBytes(res.Size), res.Tenant)
				w.Printf("  in a spec: inputs: [{name: x, artifact: %s}]\n", res.Digest)
			})
		},
	}
	c.Flags().StringVar(&tenant, "tenant", envOr("ACCORD_TENANT", defaultDataTenant), "tenant to grant the artifact to ($ACCORD_TENANT; use the spec's tenant)")
	c.Flags().StringVar(&maxSize, "max-size", defaultMaxPush, "refuse more than this many bytes in all, e.g. 500MiB or 20GiB")
	return c
}

// push stores path (a file or a directory) and grants it to tenant.
func push(ctx context.Context, store artifacts.Local, path, tenant string, limit int64) (pushResult, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return pushResult{}, cli.InputErr(err)
	}
	res := pushResult{Tenant: tenant}
	switch {
	case fi.IsDir():
		if res.Digest, err = store.PutTree(ctx, path, limit); err != nil {
			return res, pushErr(err)
		}
		// The files were read from the operator's own directory just now.
		if err := store.Grant(tenant, res.Digest); err != nil {
			return res, err
		}
	case fi.Mode().IsRegular():
		f, err := os.Open(path)
		if err != nil {
			return res, cli.InputErr(err)
		}
		defer f.Close()
		if res.Digest, _, err = store.PutReader(ctx, f, limit); err != nil {
			return res, pushErr(err)
		}
		// A file whose bytes are a tree manifest is a tree: Claim grants
		// it only over blobs the tenant already holds.
		if _, err := store.Claim(ctx, tenant, res.Digest); err != nil {
			return res, pushErr(err)
		}
	default:
		return res, cli.Usagef("%s is not a regular file or a directory", path)
	}
	res.Kind, res.Size, err = store.Stat(ctx, res.Digest)
	return res, err
}

// pushErr classifies a refused push (too large, a link or a special file,
// a bad manifest) as a usage error: the input does not fit the command.
func pushErr(err error) error {
	for _, refused := range []error{artifacts.ErrTooLarge, artifacts.ErrRefused, artifacts.ErrManifest, artifacts.ErrNotOwned} {
		if errors.Is(err, refused) {
			return cli.Usage(err)
		}
	}
	return err
}

// progressLog returns a Progress callback that logs every few seconds.
func progressLog(what string) func(int64) {
	const every = 3 * time.Second
	last := time.Now()
	return func(n int64) {
		if time.Since(last) >= every {
			last = time.Now()
			slog.Info("pushing", "path", what, "stored", humanBytes(n))
		}
	}
}

func dataLsCmd() *cobra.Command {
	var tenant string
	c := &cobra.Command{
		Use:     "ls",
		Short:   "List the artifacts granted to a tenant",
		Example: "  accord data ls\n  accord data ls --tenant acme-research --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := names.Tenant(tenant); err != nil {
				return cli.Usagef("--tenant: %w", err)
			}
			home, err := cli.HomePath()
			if err != nil {
				return err
			}
			store := artifacts.Local{Dir: artifacts.DefaultDir(home)}
			digests, err := store.Granted(tenant)
			if err != nil {
				return err
			}
			out := []pushResult{}
			for _, d := range digests {
				kind, size, err := store.Stat(cmd.Context(), d)
				if err != nil {
					return err
				}
				out = append(out, pushResult{Digest: d, Size: size, Kind: kind, Tenant: tenant})
			}
			return cli.Print(cmd, map[string]any{"tenant": tenant, "artifacts": out}, func(w cli.Writer) {
				if len(out) == 0 {
					w.Printf("no artifacts granted to tenant %s (accord data push FILE --tenant %s)\n", tenant, tenant)
				}
				for _, a := range out {
					w.Printf("%s  %-4s  %s\n", a.Digest, a.Kind, humanBytes(a.Size))
				}
			})
		},
	}
	c.Flags().StringVar(&tenant, "tenant", envOr("ACCORD_TENANT", defaultDataTenant), "tenant whose artifacts to list ($ACCORD_TENANT)")
	return c
}

// sizeUnits are the binary units parseSize accepts and humanBytes prints.
var sizeUnits = []string{"B", "KiB", "MiB", "GiB", "TiB"}

// parseSize reads a byte count: digits, optionally followed by a unit.
func parseSize(s string) (int64, error) {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(s[len(num):])
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a byte count such as 1048576, 500MiB or 20GiB", s)
	}
	for i, u := range sizeUnits {
		if unit == u || (i == 0 && unit == "") {
			if n > (1<<62)>>(10*i) {
				return 0, fmt.Errorf("%q is too large", s)
			}
			return n << (10 * i), nil
		}
	}
	return 0, fmt.Errorf("%q: unknown unit %q (want one of %s)", s, unit, strings.Join(sizeUnits, ", "))
}

// humanBytes prints n in the largest binary unit that keeps it at least 1.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= 1024 && i < len(sizeUnits)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", f, sizeUnits[i])
}
