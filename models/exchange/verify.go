package exchange

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sigstore/rekor/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accordmesh/accord/models"
	"github.com/accordmesh/accord/models/registry"
	"github.com/accordmesh/accord/provenance"
)

// Verified is a model version that checked out.
type Verified struct {
	Ref      string           `json:"ref"`
	Digest   string           `json:"digest"`
	Manifest *models.Manifest `json:"manifest"`
	// Signer and Publisher are the key IDs of the two statements' signers.
	Signer    string `json:"signer"`
	Publisher string `json:"publisher"`
	// SignatureIndex and PublicationIndex are their log indexes.
	SignatureIndex   int64 `json:"signature_log_index"`
	PublicationIndex int64 `json:"publication_log_index"`
	// Files says whether files on disk were checked too.
	Files bool `json:"files_checked"`
}

// Verify checks a model in the registry (ref is name@version or
// name@sha256:…) without its files: both statements' signatures and log
// entries, the signed files against the artifact's layers, and the
// published terms against the Accord manifest.
func (x *Exchange) Verify(ctx context.Context, ref string) (*Verified, error) {
	return x.verify(ctx, ref, "")
}

// VerifyDir is Verify, and checks that the files under dir are exactly
// the signed ones.
func (x *Exchange) VerifyDir(ctx context.Context, ref, dir string) (*Verified, error) {
	return x.verify(ctx, ref, dir)
}

func (x *Exchange) verify(ctx context.Context, ref, dir string) (*Verified, error) {
	model, err := x.Registry.Inspect(ctx, ref)
	if err != nil {
		return nil, err
	}
	m := model.Manifest
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrUnverified, model.Ref, fmt.Sprintf(format, args...))
	}
	sig, pub, err := statements(model)
	if err != nil {
		return nil, fail("%v", err)
	}
	ts, err := x.Trust()
	if err != nil {
		return nil, fmt.Errorf("exchange: trust store: %w", err)
	}
	keys := publisherKeys(ts, m.Owner)
	if len(keys) == 0 {
		return nil, fail("no key is trusted to publish models of %s (trust one for spec:%s)", m.Owner, m.Owner)
	}
	digests := map[string]string{}
	for _, f := range m.Files {
		digests[f.Path] = f.Digest
	}
	var sv *models.Verified
	if dir != "" {
		sv, err = models.VerifyDir(ctx, sig.Envelope, dir, keys...)
	} else {
		sv, err = models.VerifyDigests(ctx, sig.Envelope, digests, keys...)
	}
	if err != nil {
		return nil, fail("model signature: %v%s", err, signerNote(ts, sig.Envelope, m.Owner))
	}
	if err := sv.MatchManifest(m); err != nil {
		return nil, fail("model signature: %v", err)
	}
	pv, err := models.VerifyPublication(ctx, pub.Envelope, keys...)
	if err != nil {
		return nil, fail("publication: %v%s", err, signerNote(ts, pub.Envelope, m.Owner))
	}
	if pv.Artifact != model.Digest {
		return nil, fail("publication is for artifact %s", pv.Artifact)
	}
	if !sameManifest(&pv.Manifest, m) {
		return nil, fail("the registry's Accord manifest is not the signed publication's")
	}
	for what, l := range map[string]Logged{"model signature": sig, "publication": pub} {
		if err := x.checkLogged(ctx, ts, l); err != nil {
			return nil, fail("%s: %v", what, err)
		}
	}
	return &Verified{Ref: model.Ref, Digest: model.Digest, Manifest: m, Signer: sv.KeyID, Publisher: pv.KeyID,
		SignatureIndex: sig.LogIndex, PublicationIndex: pub.LogIndex, Files: dir != ""}, nil
}

// statements finds the signature and publication attachments. Several of
// one type (a re-signing) are allowed; the first that parses is used.
func statements(model *registry.Model) (sig, pub Logged, err error) {
	var haveSig, havePub bool
	for _, a := range model.Attachments {
		var l Logged
		if json.Unmarshal(a.Data, &l) != nil || len(l.Envelope) == 0 {
			continue
		}
		switch {
		case a.ArtifactType == TypeSignature && !haveSig:
			sig, haveSig = l, true
		case a.ArtifactType == TypePublication && !havePub:
			pub, havePub = l, true
		}
	}
	if !haveSig || !havePub {
		return sig, pub, fmt.Errorf("missing signature (%v) or publication (%v) attachment", haveSig, havePub)
	}
	return sig, pub, nil
}

func sameManifest(a, b *models.Manifest) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// checkLogged fetches the entry from the log and checks that it records
// this envelope, is proven included, and carries the log's signed entry
// timestamp, the log's key being trusted for scope log.
func (x *Exchange) checkLogged(ctx context.Context, ts *provenance.TrustStore, l Logged) error {
	if l.UUID == "" {
		return fmt.Errorf("no log entry")
	}
	e, err := x.Log.Get(ctx, l.UUID)
	if err != nil {
		return fmt.Errorf("log entry %s: %w", l.UUID, err)
	}
	bodyStr, ok := e.Body.(string)
	if !ok {
		return fmt.Errorf("log entry body is %T", e.Body)
	}
	body, err := base64.StdEncoding.DecodeString(bodyStr)
	if err != nil {
		return fmt.Errorf("log entry body: %w", err)
	}
	var b struct {
		Kind string `json:"kind"`
		Spec struct {
			Content struct {
				Hash struct{ Value string } `json:"hash"`
			} `json:"content"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Kind != "intoto" {
		return fmt.Errorf("log entry is not an intoto entry")
	}
	sum := sha256.Sum256(l.Envelope)
	if b.Spec.Content.Hash.Value != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("log entry %s records another envelope", l.UUID)
	}
	if e.LogIndex == nil || *e.LogIndex != l.LogIndex {
		return fmt.Errorf("log entry %s is not at index %d", l.UUID, l.LogIndex)
	}
	if err := verify.VerifyInclusion(ctx, &e.LogEntryAnon); err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	v, err := x.logVerifier(ctx, ts)
	if err != nil {
		return err
	}
	if err := verify.VerifySignedEntryTimestamp(ctx, &e.LogEntryAnon, v); err != nil {
		return fmt.Errorf("signed entry timestamp: %w", err)
	}
	return nil
}

// logVerifier is the log's key, which the trust store must trust for
// scope log.
func (x *Exchange) logVerifier(ctx context.Context, ts *provenance.TrustStore) (signature.Verifier, error) {
	pemKey, err := x.Log.PublicKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	pub, err := provenance.ParsePublicKeyPEM(pemKey)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	id, err := provenance.Fingerprint(pub)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	if !ts.Allowed(id, provenance.ScopeLog) {
		return nil, fmt.Errorf("the log's key %s is not trusted for scope log", id)
	}
	return provenance.LoadVerifier(pub)
}

// signerNote says, for a signature that did not verify with the owner's
// publishers' keys, who claims to have signed and what that key is trusted
// for: the usual cause is a key trusted for another tenant.
func signerNote(ts *provenance.TrustStore, envelope []byte, owner string) string {
	ids, err := provenance.EnvelopeSignerIDs(envelope)
	if err != nil || len(ids) == 0 {
		return ""
	}
	var parts []string
	for _, id := range ids {
		if k, ok := ts.Lookup(id); ok {
			parts = append(parts, fmt.Sprintf("key %s (trusted for %s)", id, strings.Join(k.Scopes, ", ")))
		} else {
			parts = append(parts, fmt.Sprintf("key %s (not in the trust store)", id))
		}
	}
	return fmt.Sprintf("; signed by %s: untrusted to publish models owned by %s, which needs spec:%s, operator or stage",
		strings.Join(parts, ", "), owner, owner)
}
