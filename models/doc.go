// Package models is the domain core of Accord's model exchange: the model
// manifest Accord attaches to every published model (identity and semantic
// version, declared change class, lineage, semantic tags, benchmarks,
// licence, economics and files), the rule that checks a new version's
// declared change class against the previous version's manifest, the CNCF
// ModelPack v0.0.7 mapping that lets ModelPack and KitOps tools read what
// Accord pushes, the OpenSSF model-signing v1.0 statement, DSSE-signed
// with Accord's provenance keys, and SplitFee, which splits the price of
// one use of a model among its owner and its ancestors' owners: a model's
// income X pays floor(X·bp/10000) to each parent it owes a royalty
// (recursively) and the rest to its owner, so the shares sum to the price.
//
// Every manifest is hostile input: Validate bounds every list and string
// and names the offending field in its error. The package does no registry
// I/O and imports no Temporal; pushing, pulling, search, specs integration
// and the royalty flow build on it (see docs/models.md).
package models

import (
	"errors"
	"fmt"
	"github.com/accordmesh/accord/models/modelref"
)

// Sentinel errors.
var (
	// ErrInvalid wraps every manifest validation error.
	ErrInvalid = errors.New("models: invalid manifest")
	// ErrVersion is a malformed version or version constraint.
	ErrVersion = modelref.ErrVersion
	// ErrChange is a new version whose declared change class or version
	// bump does not match what changed.
	ErrChange = errors.New("models: change class does not match the change")
	// ErrVerify is a model signature that does not verify against the
	// files: a changed, missing or extra file or a malformed statement.
	ErrVerify = errors.New("models: model signature does not match")
)

// FieldError is a validation error that names the field, in JSON path form
// ("lineage.parents[1].digest").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("models: %s: %s", e.Field, e.Msg) }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}
