package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/workers/local"
)

// registryFlags select the model registry. Credentials come from the
// environment (ACCORD_REGISTRY_USERNAME, ACCORD_REGISTRY_PASSWORD), never
// from flags, which other users of the machine can read.
type registryFlags struct {
	addr      string
	plainHTTP bool
}

func (f *registryFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "registry", os.Getenv("ACCORD_REGISTRY"), "OCI registry for models, host:port or host:port/prefix (default $ACCORD_REGISTRY; credentials from $ACCORD_REGISTRY_USERNAME and $ACCORD_REGISTRY_PASSWORD)")
	fl.BoolVar(&f.plainHTTP, "registry-plain-http", false, "talk plain HTTP to --registry (a registry on this machine or a test)")
}

func (f *registryFlags) apply(o *local.Options) {
	o.Registry, o.RegistryPlainHTTP = f.addr, f.plainHTTP
	o.RegistryUsername, o.RegistryPassword = os.Getenv("ACCORD_REGISTRY_USERNAME"), os.Getenv("ACCORD_REGISTRY_PASSWORD")
}

// applyAgent sets a provider agent's registry (`accord provider serve`).
func (f *registryFlags) applyAgent(o *local.AgentOptions) {
	o.Registry, o.RegistryPlainHTTP = f.addr, f.plainHTTP
	o.RegistryUsername, o.RegistryPassword = os.Getenv("ACCORD_REGISTRY_USERNAME"), os.Getenv("ACCORD_REGISTRY_PASSWORD")
}
