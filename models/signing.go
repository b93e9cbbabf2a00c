package models

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/accordmesh/accord/provenance"
	ita "github.com/in-toto/attestation/go/v1"
)

// OpenSSF model-signing v1.0: an in-toto v1 statement whose subject is the
// model (its name and a sha256 over every resource's digest) and whose
// predicate lists every file's digest, DSSE-signed. Accord signs with its
// provenance keys and verifies without Sigstore's bundle wrapper.
const (
	// PredicateTypeSignature is model-signing v1.0's predicate type.
	PredicateTypeSignature = "https://model_signing/signature/v1.0"
	// SerializationFiles is the "one resource per file" method.
	SerializationFiles = "files"
	// HashSHA256 is the only hash Accord signs with.
	HashSHA256 = "sha256"
	// MaxEnvelopeSize bounds a signature envelope read from a registry:
	// MaxFiles resources of at most ~1.2 KiB each, base64-encoded.
	MaxEnvelopeSize = 16 << 20
)

// Serialization says how the model was turned into resources; verifiers
// recompute the resources the same way.
type Serialization struct {
	Method        string   `json:"method"`
	HashType      string   `json:"hash_type"`
	AllowSymlinks bool     `json:"allow_symlinks"`
	IgnorePaths   []string `json:"ignore_paths"`
}

// Resource is one signed file: its relative path, "sha256" and the bare
// hex digest.
type Resource struct {
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	Digest    string `json:"digest"`
}

// SignaturePredicate is the model-signing v1.0 predicate.
type SignaturePredicate struct {
	Serialization Serialization `json:"serialization"`
	Resources     []Resource    `json:"resources"`
}

// accordSerialization is what Accord signs: every regular file, sha256,
// no symlinks, nothing ignored (the signature travels beside the model as
// an OCI referrer, not inside its directory).
var accordSerialization = Serialization{
	Method: SerializationFiles, HashType: HashSHA256, AllowSymlinks: false, IgnorePaths: []string{},
}

// ResourcesOf returns the manifest's files as resources, ordered by path
// (model-signing's canonical order).
func ResourcesOf(m *Manifest) []Resource {
	files := sortedFiles(m)
	rs := make([]Resource, len(files))
	for i, f := range files {
		rs[i] = Resource{Name: f.Path, Algorithm: HashSHA256, Digest: strings.TrimPrefix(f.Digest, "sha256:")}
	}
	return rs
}

// RootDigest is the subject digest: sha256 over the raw bytes of every
// resource digest, in resource order.
func RootDigest(rs []Resource) (string, error) {
	h := sha256.New()
	for _, r := range rs {
		b, err := hex.DecodeString(r.Digest)
		if err != nil {
			return "", fmt.Errorf("%w: resource %q: digest is not hex", ErrVerify, clip(r.Name))
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SignatureStatement builds the in-toto statement for the manifest's
// files; its subject name is the model's name@version.
func SignatureStatement(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	rs := ResourcesOf(m)
	root, err := RootDigest(rs)
	if err != nil {
		return nil, err
	}
	pred, err := json.Marshal(SignaturePredicate{Serialization: accordSerialization, Resources: rs})
	if err != nil {
		return nil, fmt.Errorf("models: encode predicate: %w", err)
	}
	st := provenance.Statement{
		Type:          ita.StatementTypeUri,
		Subject:       []provenance.RawSubject{{Name: m.Ref(), Digest: map[string]string{HashSHA256: root}}},
		PredicateType: PredicateTypeSignature,
		Predicate:     pred,
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("models: encode statement: %w", err)
	}
	return b, nil
}

// Sign returns the DSSE envelope of the manifest's signature statement,
// signed with key.
func Sign(ctx context.Context, key *provenance.Key, m *Manifest) ([]byte, error) {
	st, err := SignatureStatement(m)
	if err != nil {
		return nil, err
	}
	env, err := provenance.SignEnvelope(ctx, key, provenance.PayloadTypeInToto, st)
	if err != nil {
		return nil, fmt.Errorf("models: sign %s: %w", m.Ref(), err)
	}
	return env, nil
}

// Verified is what a verified signature says.
type Verified struct {
	// Name is the subject name (name@version).
	Name string
	// RootDigest is the subject's sha256 (bare hex).
	RootDigest string
	// KeyID is the fingerprint of the trusted key that signed.
	KeyID     string
	Resources []Resource
}

// VerifyDigests checks the envelope's signature against the trusted keys,
// the statement's shape and root digest, and that digests (path →
// "sha256:<hex>", e.g. from HashDir or an OCI manifest's layers) are
// exactly the signed resources: no file missing, extra or changed.
func VerifyDigests(ctx context.Context, envelope []byte, digests map[string]string, trusted ...crypto.PublicKey) (*Verified, error) {
	v, err := verifyStatement(ctx, envelope, trusted)
	if err != nil {
		return nil, err
	}
	if err := matchResources(v.Resources, digests); err != nil {
		return nil, err
	}
	return v, nil
}

// VerifyDir hashes the regular files under dir (see HashDir) and verifies
// them with VerifyDigests.
func VerifyDir(ctx context.Context, envelope []byte, dir string, trusted ...crypto.PublicKey) (*Verified, error) {
	digests, err := HashDir(dir)
	if err != nil {
		return nil, err
	}
	return VerifyDigests(ctx, envelope, digests, trusted...)
}

// MatchManifest checks that the signed resources are exactly the
// manifest's files and that the subject names the manifest's version.
func (v *Verified) MatchManifest(m *Manifest) error {
	if v.Name != m.Ref() {
		return fmt.Errorf("%w: signature is for %q, manifest is %s", ErrVerify, clip(v.Name), m.Ref())
	}
	digests := make(map[string]string, len(m.Files))
	for _, f := range m.Files {
		digests[f.Path] = f.Digest
	}
	return matchResources(v.Resources, digests)
}

var hexDigestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// verifyStatement checks the signature, then decodes and checks the
// statement: in-toto v1, model-signing v1.0, one subject whose digest is
// the root digest of the resources, Accord's serialization, and resources
// that are safe paths in strictly increasing order.
func verifyStatement(ctx context.Context, envelope []byte, trusted []crypto.PublicKey) (*Verified, error) {
	if len(envelope) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: envelope larger than %d bytes", ErrVerify, MaxEnvelopeSize)
	}
	env, _, err := provenance.ParseEnvelope(envelope)
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	if env.PayloadType != provenance.PayloadTypeInToto {
		return nil, fmt.Errorf("%w: payload type %q is not %s", ErrVerify, clip(env.PayloadType), provenance.PayloadTypeInToto)
	}
	payload, keyID, err := provenance.VerifyEnvelope(ctx, envelope, trusted...)
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	var st struct {
		Type          string                  `json:"_type"`
		Subject       []provenance.RawSubject `json:"subject"`
		PredicateType string                  `json:"predicateType"`
		Predicate     SignaturePredicate      `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrVerify, err)
	}
	if st.Type != ita.StatementTypeUri || st.PredicateType != PredicateTypeSignature {
		return nil, fmt.Errorf("%w: statement %q with predicate %q is not a model-signing v1.0 statement", ErrVerify, clip(st.Type), clip(st.PredicateType))
	}
	if len(st.Subject) != 1 {
		return nil, fmt.Errorf("%w: %d subjects, want 1", ErrVerify, len(st.Subject))
	}
	if err := checkSerialization(st.Predicate.Serialization); err != nil {
		return nil, err
	}
	if err := checkResources(st.Predicate.Resources); err != nil {
		return nil, err
	}
	root, err := RootDigest(st.Predicate.Resources)
	if err != nil {
		return nil, err
	}
	if st.Subject[0].Digest[HashSHA256] != root {
		return nil, fmt.Errorf("%w: subject digest is not the digest of the resources", ErrVerify)
	}
	return &Verified{Name: st.Subject[0].Name, RootDigest: root, KeyID: keyID, Resources: st.Predicate.Resources}, nil
}

func checkSerialization(s Serialization) error {
	if s.Method != SerializationFiles || s.HashType != HashSHA256 || s.AllowSymlinks || len(s.IgnorePaths) != 0 {
		return fmt.Errorf("%w: serialization %s/%s (symlinks %v, %d ignored paths) is not Accord's files/sha256 with no symlinks or ignored paths",
			ErrVerify, clip(s.Method), clip(s.HashType), s.AllowSymlinks, len(s.IgnorePaths))
	}
	return nil
}

func checkResources(rs []Resource) error {
	if len(rs) == 0 || len(rs) > MaxFiles {
		return fmt.Errorf("%w: %d resources, want 1-%d", ErrVerify, len(rs), MaxFiles)
	}
	for i, r := range rs {
		if err := CheckPath(r.Name); err != nil {
			return fmt.Errorf("%w: resource %d: %v", ErrVerify, i, err)
		}
		if i > 0 && rs[i-1].Name >= r.Name {
			return fmt.Errorf("%w: resources are not in strictly increasing path order at %q", ErrVerify, clip(r.Name))
		}
		if r.Algorithm != HashSHA256 || !hexDigestRE.MatchString(r.Digest) {
			return fmt.Errorf("%w: resource %q: want a sha256 hex digest", ErrVerify, clip(r.Name))
		}
	}
	return nil
}

// matchResources compares the signed resources with actual digests and
// names the first missing, changed or extra file (in path order).
func matchResources(rs []Resource, digests map[string]string) error {
	signed := make(map[string]bool, len(rs))
	for _, r := range rs {
		signed[r.Name] = true
		got, ok := digests[r.Name]
		if !ok {
			return fmt.Errorf("%w: signed file %q is missing", ErrVerify, r.Name)
		}
		if got != "sha256:"+r.Digest {
			return fmt.Errorf("%w: file %q does not match its signed digest", ErrVerify, r.Name)
		}
	}
	var extra []string
	for p := range digests {
		if !signed[p] {
			extra = append(extra, p)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("%w: file %q is not signed (%d unsigned)", ErrVerify, clip(extra[0]), len(extra))
	}
	return nil
}
