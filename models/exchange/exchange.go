package exchange

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/accordmesh/accord/internal/keylock"
	"github.com/accordmesh/accord/models"
	"github.com/accordmesh/accord/models/registry"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
)

// Attachment types of the two signed statements.
const (
	TypeSignature   = "application/vnd.accord.model.signature.v1+json"
	TypePublication = "application/vnd.accord.model.publication.v1+json"
)

// ErrUnverified is a model whose signatures, log entries or files do not
// check out.
var ErrUnverified = errors.New("exchange: model does not verify")

// Logged is a signed envelope and where the log put it: the data of a
// signature or publication attachment.
type Logged struct {
	Envelope json.RawMessage `json:"envelope"`
	UUID     string          `json:"uuid"`
	LogIndex int64           `json:"log_index"`
}

// Exchange publishes, verifies and fetches models.
type Exchange struct {
	Registry *registry.Client
	Log      tlog.Log
	// Key signs what this party publishes; nil cannot publish.
	Key *provenance.Key
	// Trust returns the trust store holding the publishers' keys (scope
	// spec:<owner> or stage) and the log's key (scope log). It is called
	// for each verification, so that newly trusted keys count at once.
	Trust func() (*provenance.TrustStore, error)
	// CacheDir holds verified copies of fetched models, one directory per
	// artifact digest.
	CacheDir string

	fetching keylock.Locks // by digest
}

// Published is what Push did.
type Published struct {
	Ref         string `json:"ref"`
	Digest      string `json:"digest"`
	Signature   Logged `json:"signature"`
	Publication Logged `json:"publication"`
}

// Push publishes the files under dir as the version m describes, owned by
// m.Owner and signed with x.Key. It is idempotent: a retry finds the
// artifact already pushed and the statements this key already attached,
// and logs nothing twice (the log returns the existing entry for an
// envelope it has).
func (x *Exchange) Push(ctx context.Context, dir string, m *models.Manifest) (Published, error) {
	if x.Key == nil {
		return Published{}, errors.New("exchange: no publisher key")
	}
	pushed, err := x.Registry.Push(ctx, dir, m)
	if err != nil {
		return Published{}, err
	}
	out := Published{Ref: pushed.Ref, Digest: pushed.Digest}
	model, err := x.Registry.Inspect(ctx, m.Name+"@"+pushed.Digest)
	if err != nil {
		return out, err
	}
	mine := x.ownAttachments(ctx, model)
	if out.Signature, err = x.attachSigned(ctx, m.Name, pushed.Digest, TypeSignature, mine[TypeSignature], func() ([]byte, error) {
		return models.Sign(ctx, x.Key, m)
	}); err != nil {
		return out, err
	}
	if out.Publication, err = x.attachSigned(ctx, m.Name, pushed.Digest, TypePublication, mine[TypePublication], func() ([]byte, error) {
		return models.SignPublication(ctx, x.Key, m, pushed.Digest)
	}); err != nil {
		return out, err
	}
	return out, nil
}

// ownAttachments returns the logged statements of each type already
// attached to model and signed by x.Key.
func (x *Exchange) ownAttachments(ctx context.Context, model *registry.Model) map[string]*Logged {
	out := map[string]*Logged{}
	for _, a := range model.Attachments {
		if a.ArtifactType != TypeSignature && a.ArtifactType != TypePublication {
			continue
		}
		var l Logged
		if json.Unmarshal(a.Data, &l) != nil {
			continue
		}
		if _, _, err := provenance.VerifyEnvelope(ctx, l.Envelope, x.Key.Public()); err == nil {
			out[a.ArtifactType] = &l
		}
	}
	return out
}

// attachSigned logs and attaches a statement, unless have already is.
func (x *Exchange) attachSigned(ctx context.Context, name, digest, typ string, have *Logged, sign func() ([]byte, error)) (Logged, error) {
	if have != nil {
		return *have, nil
	}
	env, err := sign()
	if err != nil {
		return Logged{}, err
	}
	e, err := x.Log.Upload(ctx, env, x.Key.PublicPEM())
	if err != nil {
		return Logged{}, fmt.Errorf("exchange: log %s of %s: %w", typ, name, err)
	}
	l := Logged{Envelope: env, UUID: e.UUID}
	if e.LogIndex != nil {
		l.LogIndex = *e.LogIndex
	}
	data, err := json.Marshal(l)
	if err != nil {
		return Logged{}, fmt.Errorf("exchange: encode %s: %w", typ, err)
	}
	if err := x.Registry.Attach(ctx, name, digest, registry.Attachment{ArtifactType: typ, Data: data}); err != nil {
		return Logged{}, err
	}
	return l, nil
}

// publisherKeys are the keys trusted to publish owner's models: the
// owner's own (spec:<owner>) and the operator's (operator, or the legacy
// single-party stage), which publishes verified jobs' outputs on their
// tenants' behalf. A provider's key publishes nothing.
func publisherKeys(ts *provenance.TrustStore, owner string) []crypto.PublicKey {
	keys := ts.KeysFor(provenance.ScopeSpecPrefix + owner)
	keys = append(keys, ts.KeysFor(provenance.ScopeOperator)...)
	return append(keys, ts.KeysFor(provenance.ScopeStage)...)
}

// Fetch places the model pinned by digest under x.CacheDir, verified, and
// returns its directory. A cached copy was verified when it was placed and
// is re-hashed against its signature before it is handed out again, so a
// copy changed on disk is fetched anew.
func (x *Exchange) Fetch(ctx context.Context, ref, digest string) (string, error) {
	name, _, err := models.ParseRef(ref)
	if err != nil {
		return "", fmt.Errorf("exchange: fetch %q: %w", ref, err)
	}
	if err := models.CheckDigest(digest); err != nil {
		return "", fmt.Errorf("exchange: fetch %s: %w", ref, err)
	}
	defer x.fetching.Lock(digest)()
	dst := filepath.Join(x.CacheDir, digest[len("sha256:"):])
	if _, err := os.Stat(dst); err == nil {
		if v, err := x.VerifyDir(ctx, name+"@"+digest, dst); err == nil {
			if v.Ref != ref {
				return "", fmt.Errorf("%w: %s is %s, the plan pinned %s", ErrUnverified, digest, v.Ref, ref)
			}
			return dst, nil
		}
		if err := os.RemoveAll(dst); err != nil {
			return "", fmt.Errorf("exchange: drop changed copy of %s: %w", ref, err)
		}
	}
	if err := os.MkdirAll(x.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("exchange: fetch %s: %w", ref, err)
	}
	tmp, err := os.MkdirTemp(x.CacheDir, ".pull-")
	if err != nil {
		return "", fmt.Errorf("exchange: fetch %s: %w", ref, err)
	}
	defer os.RemoveAll(tmp)
	files := filepath.Join(tmp, "m")
	if _, err := x.Registry.Pull(ctx, name+"@"+digest, files); err != nil {
		return "", err
	}
	v, err := x.VerifyDir(ctx, name+"@"+digest, files)
	if err != nil {
		return "", err
	}
	if v.Ref != ref {
		return "", fmt.Errorf("%w: %s is %s, the plan pinned %s", ErrUnverified, digest, v.Ref, ref)
	}
	if err := os.Rename(files, dst); err != nil {
		return "", fmt.Errorf("exchange: fetch %s: %w", ref, err)
	}
	return dst, nil
}
