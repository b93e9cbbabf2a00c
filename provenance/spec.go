package provenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	ita "github.com/in-toto/attestation/go/v1"

	"github.com/accordmesh/accord/specs"
)

// SpecBundlePredicateType is the predicate type of a spec signature: an
// in-toto statement over the whole composed spec (the root document and
// every file it extends or imports, by digest), for one tenant, with an
// expiry.
const SpecBundlePredicateType = PredicateTypePrefix + "spec-bundle/v1"

// legacySpecSignatureType is the old root-only spec signature. It let an
// imported file change under a valid signature, so it is refused.
const legacySpecSignatureType = PredicateTypePrefix + "spec-signature/v1"

// SpecSignatureExt is the conventional suffix of a spec's signature file
// ("job.md" → "job.md.sig"), written by `accord spec sign`.
const SpecSignatureExt = ".sig"

// Spec signature lifetimes.
const (
	// DefaultSpecSignatureTTL is how long `accord spec sign` makes a
	// signature valid unless told otherwise.
	DefaultSpecSignatureTTL = 30 * 24 * time.Hour
	// MaxSpecSignatureTTL bounds not_after - signed_at, at signing and at
	// verification: a leaked or forgotten signature stops working.
	MaxSpecSignatureTTL = 366 * 24 * time.Hour
	// SpecSignatureClockSkew is how far in the future signed_at may be
	// against the verifier's clock.
	SpecSignatureClockSkew = 5 * time.Minute
)

var (
	// ErrExpired: the signature's validity ended before the check.
	ErrExpired = errors.New("provenance: signature expired")
	// ErrLegacySpecSignature: a root-only spec signature (spec-signature/v1).
	ErrLegacySpecSignature = errors.New("provenance: old root-only spec signature")
)

// SpecFile is one file composed into a spec, named by its path relative to
// the root document's directory (slash-separated, as specs.Composed gives).
type SpecFile struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

// SpecBundle is a composed spec as loaded: the root document's digest and
// every other file it extends or imports, recursively.
type SpecBundle struct {
	DocumentDigest string
	Files          []SpecFile
}

// SpecBundleOf is what a signature over a spec must cover: doc (the root
// document's exact bytes) and the files composed with it (docs as
// specs.Load lists them, root first: Source.Documents or Plan.Documents),
// named relative to the root's directory.
func SpecBundleOf(doc []byte, docs []specs.Document) (SpecBundle, error) {
	d := Digest(doc)
	if len(docs) == 0 || docs[0].Digest != d {
		return SpecBundle{}, fmt.Errorf("provenance: the spec's composed files do not start with its document %s", d)
	}
	files, err := specs.Composed(docs)
	if err != nil {
		return SpecBundle{}, err
	}
	b := SpecBundle{DocumentDigest: d, Files: make([]SpecFile, len(files))}
	for i, f := range files {
		b.Files[i] = SpecFile{Path: f.File, Digest: f.Digest}
	}
	return b, nil
}

// SpecBundlePredicate is what a spec signer asserts: exactly these files
// make up the spec, for this tenant, until NotAfter.
type SpecBundlePredicate struct {
	Name           string `json:"name,omitempty"`
	Tenant         string `json:"tenant"`
	DocumentDigest string `json:"document_digest"`
	// Files are the composed files other than the root, sorted by path.
	Files    []SpecFile `json:"files"`
	SignedAt time.Time  `json:"signed_at"`
	NotAfter time.Time  `json:"not_after"`
}

// SignSpec signs p (a DSSE envelope over an in-toto statement whose
// subjects are the root document and every composed file). Files are
// sorted; an empty tenant, a bad digest, a repeated path or a validity
// outside (0, MaxSpecSignatureTTL] is refused.
func SignSpec(ctx context.Context, key *Key, p SpecBundlePredicate) ([]byte, error) {
	p.Files = slices.Clone(p.Files)
	slices.SortFunc(p.Files, func(a, b SpecFile) int { return strings.Compare(a.Path, b.Path) })
	if p.Files == nil {
		p.Files = []SpecFile{}
	}
	p.SignedAt, p.NotAfter = p.SignedAt.UTC().Truncate(time.Second), p.NotAfter.UTC().Truncate(time.Second)
	if err := p.check(); err != nil {
		return nil, err
	}
	pred, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("provenance: encode spec signature: %w", err)
	}
	name := p.Name
	if name == "" {
		name = "spec"
	}
	subjects := []RawSubject{jsonSubject(Subject{Name: name, Digest: p.DocumentDigest})}
	for _, f := range p.Files {
		subjects = append(subjects, jsonSubject(Subject{Name: f.Path, Digest: f.Digest}))
	}
	payload, err := json.Marshal(Statement{
		Type: ita.StatementTypeUri, Subject: subjects,
		PredicateType: SpecBundlePredicateType, Predicate: pred,
	})
	if err != nil {
		return nil, fmt.Errorf("provenance: encode spec statement: %w", err)
	}
	return SignEnvelope(ctx, key, PayloadTypeInToto, payload)
}

// check validates a predicate, whether about to be signed or just verified.
func (p *SpecBundlePredicate) check() error {
	if p.Tenant == "" {
		return fmt.Errorf("%w: spec signature names no tenant", ErrBadStatement)
	}
	if !ValidDigest(p.DocumentDigest) {
		return fmt.Errorf("%w: spec signature: bad document digest %q", ErrBadStatement, p.DocumentDigest)
	}
	seen := map[string]bool{}
	for _, f := range p.Files {
		if f.Path == "" || path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || seen[f.Path] {
			return fmt.Errorf("%w: spec signature: bad or repeated file path %q", ErrBadStatement, f.Path)
		}
		if !ValidDigest(f.Digest) {
			return fmt.Errorf("%w: spec signature: bad digest %q for %s", ErrBadStatement, f.Digest, f.Path)
		}
		seen[f.Path] = true
	}
	ttl := p.NotAfter.Sub(p.SignedAt)
	if ttl <= 0 || ttl > MaxSpecSignatureTTL {
		return fmt.Errorf("%w: spec signature valid from %s to %s: the validity must be positive and at most %s",
			ErrBadStatement, p.SignedAt.Format(time.RFC3339), p.NotAfter.Format(time.RFC3339), MaxSpecSignatureTTL)
	}
	return nil
}

// VerifySpecSignature checks that sig (a DSSE envelope from SignSpec) was
// made by a key trusted for "spec:<tenant>" (or "spec:*"), for tenant, over
// exactly the files of loaded (none added, removed or changed), and is
// valid at now (the admission time). It returns the signing key's ID.
// Errors wrap ErrUntrusted, ErrSignature, ErrBadEnvelope, ErrBadStatement,
// ErrLegacySpecSignature, ErrExpired or ErrDigest, and name files only by
// their paths relative to the root document.
func VerifySpecSignature(ctx context.Context, sig []byte, loaded SpecBundle, trust *TrustStore, tenant string, now time.Time) (keyID string, err error) {
	if tenant == "" {
		return "", fmt.Errorf("%w: no tenant", ErrUntrusted)
	}
	scope := ScopeSpecPrefix + tenant
	keys := trust.KeysFor(scope)
	if len(keys) == 0 {
		return "", fmt.Errorf("%w: no key is trusted to sign specs of tenant %q", ErrUntrusted, tenant)
	}
	payload, id, err := VerifyEnvelope(ctx, sig, keys...)
	if err != nil {
		ids, _ := EnvelopeSignerIDs(sig)
		return "", fmt.Errorf("spec signature by %v: not from a key trusted for %s: %w", ids, scope, err)
	}
	p, err := parseSpecBundle(payload)
	if err != nil {
		return "", err
	}
	if p.Tenant != tenant {
		return "", fmt.Errorf("%w: the spec was signed for tenant %q, not %q", ErrUntrusted, p.Tenant, tenant)
	}
	if now.Before(p.SignedAt.Add(-SpecSignatureClockSkew)) {
		return "", fmt.Errorf("%w: spec signature made in the future (%s)", ErrBadStatement, p.SignedAt.Format(time.RFC3339))
	}
	if !now.Before(p.NotAfter) {
		return "", fmt.Errorf("%w: spec signature expired at %s; re-sign with `accord spec sign FILE --key KEY [--expires DURATION]`",
			ErrExpired, p.NotAfter.Format(time.RFC3339))
	}
	if err := p.covers(loaded); err != nil {
		return "", err
	}
	return id, nil
}

// parseSpecBundle reads and checks the predicate of a verified payload.
func parseSpecBundle(payload []byte) (*SpecBundlePredicate, error) {
	st, err := ParseStatement(payload)
	if err != nil {
		return nil, err
	}
	switch st.PredicateType {
	case SpecBundlePredicateType:
	case legacySpecSignatureType:
		return nil, fmt.Errorf("%w: it covers the root document only, not the files it extends or imports; "+
			"re-sign with `accord spec sign FILE --key KEY`, which signs the whole composed spec with an expiry", ErrLegacySpecSignature)
	default:
		return nil, fmt.Errorf("%w: predicate type %s is not a spec signature", ErrBadStatement, st.PredicateType)
	}
	var p SpecBundlePredicate
	if err := json.Unmarshal(st.Predicate, &p); err != nil {
		return nil, fmt.Errorf("%w: spec signature predicate: %v", ErrBadStatement, err)
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	if !subjectsHaveDigest(st, p.DocumentDigest) {
		return nil, fmt.Errorf("%w: spec signature's subjects lack its document digest", ErrBadStatement)
	}
	return &p, nil
}

// maxListed bounds the file names one mismatch error lists.
const maxListed = 8

// covers reports every difference between the signed files and loaded.
func (p *SpecBundlePredicate) covers(loaded SpecBundle) error {
	var diffs []string
	if p.DocumentDigest != loaded.DocumentDigest {
		diffs = append(diffs, fmt.Sprintf("the root document changed (signed %s, now %s)", p.DocumentDigest, loaded.DocumentDigest))
	}
	signed := map[string]string{}
	for _, f := range p.Files {
		signed[f.Path] = f.Digest
	}
	now := map[string]bool{}
	for _, f := range loaded.Files {
		now[f.Path] = true
		switch d, ok := signed[f.Path]; {
		case !ok:
			diffs = append(diffs, f.Path+" was added (not signed)")
		case d != f.Digest:
			diffs = append(diffs, fmt.Sprintf("%s changed (signed %s, now %s)", f.Path, d, f.Digest))
		}
	}
	for _, f := range p.Files {
		if !now[f.Path] {
			diffs = append(diffs, f.Path+" was removed (signed, no longer composed)")
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	slices.Sort(diffs)
	if len(diffs) > maxListed {
		diffs = append(diffs[:maxListed], fmt.Sprintf("and %d more", len(diffs)-maxListed))
	}
	return fmt.Errorf("%w: the spec signature does not cover the spec as composed: %s; re-sign it with `accord spec sign`",
		ErrDigest, strings.Join(diffs, "; "))
}
