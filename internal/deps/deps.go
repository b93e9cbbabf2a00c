// Package deps pins the modules Accord builds on while the packages that use
// them land; it is removed once every dependency is imported for real.
package deps

import (
	_ "github.com/containerd/containerd/v2/client"
	_ "github.com/containerd/containerd/v2/pkg/cdi"
	_ "github.com/google/cel-go/cel"
	_ "github.com/hashicorp/nomad/api"
	_ "github.com/in-toto/attestation/go/v1"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/opencontainers/image-spec/specs-go/v1"
	_ "github.com/opencontainers/runtime-spec/specs-go"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/secure-systems-lab/go-securesystemslib/dsse"
	_ "github.com/sigstore/rekor/pkg/client"
	_ "github.com/sigstore/rekor/pkg/types/dsse/v0.0.1"
	_ "github.com/sigstore/rekor/pkg/types/intoto/v0.0.2"
	_ "github.com/sigstore/rekor/pkg/util"
	_ "github.com/sigstore/rekor/pkg/verify"
	_ "github.com/sigstore/sigstore/pkg/signature"
	_ "github.com/spf13/cobra"
	_ "github.com/transparency-dev/merkle/proof"
	_ "github.com/transparency-dev/tessera"
	_ "github.com/transparency-dev/tessera/storage/posix"
	_ "github.com/yuin/goldmark"
	_ "go.temporal.io/sdk/client"
	_ "go.temporal.io/sdk/testsuite"
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	_ "go.temporal.io/server/temporal"
	_ "gonum.org/v1/gonum/optimize/convex/lp"
	_ "gopkg.in/yaml.v3"
	_ "modernc.org/sqlite"
)
