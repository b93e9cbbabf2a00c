package services

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"path"
	"regexp"
	"slices"

	"github.com/accordmesh/accord/runtimes"
)

// A service may serve a registry model: the deployment resolves its
// version constraint once per release (ResolveModel), pins it by digest,
// prices one inference split up its verified lineage, and every replica of
// the release mounts the verified copy read-only (StartReplica). When the
// model is priced per inference, each billing period pays the release's
// successful requests × that price (InferenceFees), scaled share by share,
// from the period's escrow in its settlement transaction.

// StreamBilling is the measurement stream a deployment cuts once per
// billing period: its per-release request counts are what the period's
// inferences pay. Every endpoint records it from its opening.
const StreamBilling = "billing"

// ErrModelRefused is a model the registry does not have, or that does not
// verify; retrying does not help.
var ErrModelRefused = errors.New("services: model refused")

// Bounds on a served model.
const (
	// MaxModelShares bounds the owners one inference pays (the ledger's
	// settlement.MaxModelFeeShares).
	MaxModelShares = 256
	maxModelName   = 200
)

// ModelExchange is the model registry as a services host uses it.
type ModelExchange interface {
	// Resolve pins name at the highest version matching constraint.
	Resolve(ctx context.Context, name, constraint string) (ref, digest string, err error)
	// InferenceFee prices one inference of the pinned model from its
	// verified publication and splits it up its verified lineage
	// (models.SplitFee).
	InferenceFee(ctx context.Context, ref, digest string) (ModelFee, error)
	// Fetch places the pinned model on this host, verified (signatures,
	// log entries, every file's digest), and returns its directory.
	Fetch(ctx context.Context, ref, digest string) (string, error)
}

// ModelFee is the price of one inference split among owners.
type ModelFee struct {
	Currency string       `json:"currency"`
	Price    int64        `json:"price"`
	Shares   []ModelShare `json:"shares,omitempty"`
}

// ModelShare is one owner's part of one inference's price.
type ModelShare struct {
	Owner  string `json:"owner"` // tenant paid (ledger account owner:<owner>)
	Model  string `json:"model"` // the name@version whose owner this pays
	Amount int64  `json:"amount"`
}

// ModelPin is a release's model, resolved and priced: what its replicas
// mount and what its inferences pay.
type ModelPin struct {
	Name       string `json:"name"`
	Constraint string `json:"constraint"`
	As         string `json:"as"`
	Ref        string `json:"ref"`    // name@version
	Digest     string `json:"digest"` // OCI manifest digest
	// Fee is one inference's price and its split (zero price: the model
	// is not priced per inference).
	Fee ModelFee `json:"fee"`
}

// ResolveModelRequest asks for a release's model.
type ResolveModelRequest struct {
	Deployment string `json:"deployment"`
	Name       string `json:"name"`
	Constraint string `json:"constraint"`
	As         string `json:"as"`
	Currency   string `json:"currency"` // the deployment's budget currency
}

var (
	digestRE    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	modelNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]*$`)
)

// ResolveModel is the activity: it pins the model, verifies it and places
// it in the host's verified cache, and prices one inference. A model
// priced in another currency than the budget's is refused.
func (h *Host) ResolveModel(ctx context.Context, r ResolveModelRequest) (ModelPin, error) {
	if h.Models == nil {
		return ModelPin{}, fmt.Errorf("%w: this services host has no model registry (--registry)", ErrInvalid)
	}
	if !DeploymentIDPattern.MatchString(r.Deployment) || len(r.Name) > maxModelName || !modelNameRE.MatchString(r.Name) || !mountPath(r.As) {
		return ModelPin{}, fmt.Errorf("%w: model %q at %q", ErrInvalid, r.Name, r.As)
	}
	ref, digest, err := h.Models.Resolve(ctx, r.Name, r.Constraint)
	if err != nil {
		return ModelPin{}, fmt.Errorf("services: resolve model %s %s: %w", r.Name, r.Constraint, err)
	}
	fee, err := h.Models.InferenceFee(ctx, ref, digest)
	if err != nil {
		return ModelPin{}, fmt.Errorf("services: price model %s: %w", ref, err)
	}
	if err := fee.check(ref); err != nil {
		return ModelPin{}, err
	}
	if fee.Price > 0 && fee.Currency != r.Currency {
		return ModelPin{}, fmt.Errorf("%w: model %s is priced in %s, the budget in %s", ErrInvalid, ref, fee.Currency, r.Currency)
	}
	if _, err := h.Models.Fetch(ctx, ref, digest); err != nil {
		return ModelPin{}, fmt.Errorf("services: fetch model %s: %w", ref, err)
	}
	return ModelPin{Name: r.Name, Constraint: r.Constraint, As: r.As, Ref: ref, Digest: digest, Fee: fee}, nil
}

// check refuses a split that does not add up: shares must be positive and
// sum to the price.
func (f ModelFee) check(ref string) error {
	if f.Price < 0 || f.Price > MaxAmount || len(f.Shares) > MaxModelShares {
		return fmt.Errorf("%w: model %s: price %d in %d shares", ErrInvalid, ref, f.Price, len(f.Shares))
	}
	var sum int64
	for _, s := range f.Shares {
		if s.Amount <= 0 || s.Owner == "" {
			return fmt.Errorf("%w: model %s: share %+v", ErrInvalid, ref, s)
		}
		sum += s.Amount
	}
	if sum != f.Price {
		return fmt.Errorf("%w: model %s: shares add up to %d, the price is %d", ErrInvalid, ref, sum, f.Price)
	}
	return nil
}

// mountPath accepts a clean absolute path inside a container.
func mountPath(p string) bool {
	return len(p) > 1 && len(p) <= 256 && path.IsAbs(p) && path.Clean(p) == p
}

// modelMount fetches a replica's model (verified; the host's cache is
// re-hashed before it is handed out) and mounts it read-only.
func (h *Host) modelMount(ctx context.Context, m *ReplicaModel) ([]runtimes.Mount, error) {
	if m == nil {
		return nil, nil
	}
	if h.Models == nil {
		return nil, fmt.Errorf("%w: model %s: this services host has no model registry (--registry)", ErrInvalid, m.Ref)
	}
	if !digestRE.MatchString(m.Digest) || !mountPath(m.As) {
		return nil, fmt.Errorf("%w: model %s %s at %q", ErrInvalid, m.Ref, m.Digest, m.As)
	}
	dir, err := h.Models.Fetch(ctx, m.Ref, m.Digest)
	if err != nil {
		return nil, fmt.Errorf("services: fetch model %s: %w", m.Ref, err)
	}
	return []runtimes.Mount{{Source: dir, Target: m.As}}, nil
}

// ReplicaModel is the pinned model a replica mounts: references only; the
// host fetches and verifies the files itself.
type ReplicaModel struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	As     string `json:"as"`
}

// InferenceFee is what one release's inferences cost in a billing period.
type InferenceFee struct {
	Release  string `json:"release"` // the release label (r<N>)
	Model    string `json:"model"`   // name@version
	Digest   string `json:"digest"`
	Requests int64  `json:"requests"` // successful requests the release answered
	Price    int64  `json:"price"`    // per inference
	// Shares is one inference's split; each owner is paid Requests ×
	// its amount.
	Shares []ModelShare `json:"shares,omitempty"`
}

// Total is Requests × Price; ok is false when it exceeds MaxAmount.
func (f InferenceFee) Total() (int64, bool) { return mulAmount(f.Requests, f.Price) }

// Scaled returns the shares paid for Requests inferences: each unit share
// times Requests, so they sum to Total exactly. ok is false when a product
// exceeds MaxAmount.
func (f InferenceFee) Scaled() ([]ModelShare, bool) {
	out := make([]ModelShare, 0, len(f.Shares))
	for _, s := range f.Shares {
		amt, ok := mulAmount(f.Requests, s.Amount)
		if !ok {
			return nil, false
		}
		if amt > 0 {
			out = append(out, ModelShare{Owner: s.Owner, Model: s.Model, Amount: amt})
		}
	}
	return out, true
}

// mulAmount multiplies two non-negative amounts, failing past MaxAmount.
func mulAmount(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > uint64(MaxAmount) {
		return 0, false
	}
	return int64(lo), true
}

// InferenceFees prices a billing period's requests: for each release that
// serves a per-inference-priced model, its successful requests in the
// period's window times the price. Releases are visited in label order
// so the fees are deterministic.
func InferenceFees(w Window, pins map[string]ModelPin) []InferenceFee {
	var out []InferenceFee
	for _, label := range slices.Sorted(maps.Keys(pins)) {
		p := pins[label]
		st, ok := w.Versions[label]
		if !ok || p.Fee.Price == 0 {
			continue
		}
		n := st.Requests - st.Errors
		if n <= 0 {
			continue
		}
		out = append(out, InferenceFee{Release: label, Model: p.Ref, Digest: p.Digest, Requests: n, Price: p.Fee.Price, Shares: p.Fee.Shares})
	}
	return out
}
