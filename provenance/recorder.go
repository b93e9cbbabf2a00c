package provenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/accordmesh/accord/internal/atomicfile"
	"github.com/accordmesh/accord/provenance/tlog"
)

// Attestation is one stage's signed envelope and, once logged, its entry.
type Attestation struct {
	JobID string `json:"job_id"`
	Stage string `json:"stage"`
	// Digest is "sha256:<hex>" of Envelope: what the next stage links to.
	Digest string `json:"digest"`
	// Envelope is the DSSE envelope (JSON) exactly as signed; it is base64
	// in JSON so that no re-encoding can change the bytes Digest covers.
	Envelope []byte `json:"envelope"`
	// SignerPublicKey is the PEM of the key that signed Envelope.
	SignerPublicKey string `json:"signer_public_key"`
	// Entry is the log entry (nil until the upload succeeded).
	Entry *tlog.Entry `json:"entry,omitempty"`
}

// Store keeps each job's attestations as files: dir/<job>/<stage>.json.
// Writes are atomic; a stored envelope is never replaced.
type Store struct {
	dir string
	mu  sync.Mutex
}

// NewStore returns a store rooted at dir (created on first write).
func NewStore(dir string) *Store { return &Store{dir: dir} }

// DefaultStoreDir is home/provenance/jobs.
func DefaultStoreDir(home string) string { return filepath.Join(home, "provenance", "jobs") }

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,200}$`)

func (s *Store) path(jobID, stage string) (string, error) {
	if !safeName.MatchString(jobID) || jobID == "." || jobID == ".." {
		return "", fmt.Errorf("provenance: job ID %q is not a safe file name", jobID)
	}
	if !knownStage(stage) {
		return "", fmt.Errorf("%w: unknown stage %q", ErrBadStatement, stage)
	}
	return filepath.Join(s.dir, jobID, stage+".json"), nil
}

// Get returns a stored attestation, or ErrNotFound.
func (s *Store) Get(jobID, stage string) (*Attestation, error) {
	p, err := s.path(jobID, stage)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: job %s stage %s", ErrNotFound, jobID, stage)
	}
	if err != nil {
		return nil, fmt.Errorf("provenance: read attestation: %w", err)
	}
	var a Attestation
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("provenance: attestation %s: %w", p, err)
	}
	return &a, nil
}

// Put writes an attestation (atomically replacing the file).
func (s *Store) Put(a *Attestation) error {
	p, err := s.path(a.JobID, a.Stage)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return fmt.Errorf("provenance: encode attestation: %w", err)
	}
	return writeFileAtomic(p, append(b, '\n'), 0o644)
}

// create writes a new attestation only if none is stored for its job and
// stage (atomically, across processes: a hard link of a complete temporary
// file), reporting created=false when one exists.
func (s *Store) create(a *Attestation) (created bool, err error) {
	p, err := s.path(a.JobID, a.Stage)
	if err != nil {
		return false, err
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return false, fmt.Errorf("provenance: encode attestation: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return false, fmt.Errorf("provenance: store attestation: %w", err)
	}
	created, err = atomicfile.WriteNew(p, append(b, '\n'), 0o600)
	if err != nil {
		return false, fmt.Errorf("provenance: store attestation: %w", err)
	}
	return created, nil
}

// List returns a job's stored attestations in stage order, or a
// deployment's events in chain order.
func (s *Store) List(jobID string) ([]*Attestation, error) {
	var out []*Attestation
	stages := Stages
	if _, err := s.Get(jobID, StageSpec); errors.Is(err, ErrNotFound) { // not a job: maybe a deployment
		dep, err := s.deploymentStages(jobID)
		if err != nil {
			return nil, err
		}
		if len(dep) > 0 {
			stages = dep
		}
	}
	for _, st := range stages {
		a, err := s.Get(jobID, st)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no attestations for job %s", ErrNotFound, jobID)
	}
	return out, nil
}

// maxDeploymentEvents bounds the events one deployment's receipt lists.
const maxDeploymentEvents = 1_000_000

// deploymentStages lists the deployment events stored for id, in seq
// order (none for a job).
func (s *Store) deploymentStages(id string) ([]string, error) {
	if _, err := s.path(id, StageSpec); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provenance: list %s: %w", id, err)
	}
	var seqs []int
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if seq, dep := DeploymentSeq(name); ok && dep && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
		if len(seqs) > maxDeploymentEvents {
			return nil, fmt.Errorf("provenance: deployment %s has more than %d events", id, maxDeploymentEvents)
		}
	}
	sort.Ints(seqs)
	out := make([]string, len(seqs))
	for i, n := range seqs {
		out[i] = DeploymentStage(n)
	}
	return out, nil
}

// Jobs lists the job IDs with stored attestations.
func (s *Store) Jobs() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provenance: list jobs: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Recorder signs stage statements and logs them; the workflow's attest
// activity calls Attest once per stage.
type Recorder struct {
	log   tlog.Log
	key   *Key
	store *Store
	mu    sync.Mutex // serialises sign-and-persist per process
}

// NewRecorder returns a recorder signing with key, logging to l and keeping
// envelopes in store.
func NewRecorder(l tlog.Log, key *Key, store *Store) *Recorder {
	return &Recorder{log: l, key: key, store: store}
}

// AttestRequest is one stage's statement content.
type AttestRequest struct {
	JobID string
	Stage string
	// Previous is the previous stage's envelope digest; when empty (and the
	// stage is not spec) it is taken from the store.
	Previous string
	// Subjects besides the job subject (artifact digests).
	Subjects []Subject
	// Predicate is the stage's predicate as a JSON object (one of the
	// XxxPredicate types, or the workflow's equivalent map).
	Predicate json.RawMessage
	// SpecDigest is the job's spec digest for the statement header when
	// the store holds no spec attestation of the job (a provider agent
	// signing its stage); the stored spec attestation wins.
	SpecDigest string
}

// Attest signs and logs one stage of a job.
//
// Idempotent by (job, stage): the signed envelope is persisted before it is
// uploaded, and a retry reuses the stored envelope (first write wins: a
// retry with different content gets the original attestation back, and a
// warning is logged), so one stage never has two envelopes. Uploads are
// idempotent in the log, so a retry after a failed or lost upload returns
// the same entry. If the log is unreachable the error wraps
// tlog.ErrUnavailable and the envelope stays stored for the retry.
func (r *Recorder) Attest(ctx context.Context, req AttestRequest) (*Attestation, error) {
	a, err := r.sign(ctx, req)
	if err != nil {
		return nil, err
	}
	if a.Entry != nil {
		return a, nil
	}
	e, err := r.log.Upload(ctx, a.Envelope, []byte(a.SignerPublicKey))
	if err != nil {
		return nil, fmt.Errorf("provenance: log %s attestation of %s: %w", req.Stage, req.JobID, err)
	}
	a.Entry = e
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.store.Put(a); err != nil {
		return nil, err
	}
	return a, nil
}

// Sign signs one stage of a job and keeps the envelope, without logging
// it: the party that must sign a stage hands the envelope to the one that
// logs it (a provider agent's execution attestation, which the control
// plane logs with Record). Idempotent like Attest.
func (r *Recorder) Sign(ctx context.Context, req AttestRequest) (*Attestation, error) {
	return r.sign(ctx, req)
}

// Signed is a stage envelope another party signed, as Record takes it.
type Signed struct {
	Envelope        []byte
	SignerPublicKey string // PEM
}

// ErrSigner reports a signed stage that Record refuses: a bad signature, a
// signer not allowed to sign the stage, or a statement other than the one
// the recorder would have made.
var ErrSigner = errors.New("provenance: signed stage refused")

// Record checks an envelope another party signed for req's stage, keeps it
// and logs it. The envelope must verify under its signer's key, allowed
// must accept that key's ID, and its payload must be exactly the statement
// this recorder builds for req: the signer vouches for what the job
// recorded, nothing else. Idempotent by (job, stage) like Attest: a stage
// already kept is logged (or returned) as it is.
func (r *Recorder) Record(ctx context.Context, req AttestRequest, s Signed, allowed func(keyID string) bool) (*Attestation, error) {
	a, err := r.keep(ctx, req, s, allowed)
	if err != nil {
		return nil, err
	}
	if a.Entry != nil {
		return a, nil
	}
	e, err := r.log.Upload(ctx, a.Envelope, []byte(a.SignerPublicKey))
	if err != nil {
		return nil, fmt.Errorf("provenance: log %s attestation of %s: %w", req.Stage, req.JobID, err)
	}
	a.Entry = e
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.store.Put(a); err != nil {
		return nil, err
	}
	return a, nil
}

// keep checks s against req and stores it (first write wins).
func (r *Recorder) keep(ctx context.Context, req AttestRequest, s Signed, allowed func(keyID string) bool) (*Attestation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, err := r.store.Get(req.JobID, req.Stage); err == nil {
		return old, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	pub, err := ParsePublicKeyPEM([]byte(s.SignerPublicKey))
	if err != nil {
		return nil, fmt.Errorf("%w: signer key: %v", ErrSigner, err)
	}
	payload, keyID, err := VerifyEnvelope(ctx, s.Envelope, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSigner, err)
	}
	if allowed == nil || !allowed(keyID) {
		return nil, fmt.Errorf("%w: key %s may not sign the %s stage", ErrSigner, keyID, req.Stage)
	}
	want, err := r.statement(req)
	if err != nil {
		return nil, err
	}
	if string(payload) != string(want) {
		return nil, fmt.Errorf("%w: the %s statement of %s differs from the job's record", ErrSigner, req.Stage, req.JobID)
	}
	a := &Attestation{JobID: req.JobID, Stage: req.Stage, Digest: Digest(s.Envelope), Envelope: s.Envelope, SignerPublicKey: s.SignerPublicKey}
	created, err := r.store.create(a)
	if err != nil {
		return nil, err
	}
	if !created {
		return r.store.Get(req.JobID, req.Stage)
	}
	return a, nil
}

func (r *Recorder) sign(ctx context.Context, req AttestRequest) (*Attestation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, err := r.store.Get(req.JobID, req.Stage); err == nil {
		if want, err := r.statement(req); err == nil {
			if _, payload, err := ParseEnvelope(old.Envelope); err == nil && string(payload) != string(want) {
				slog.Warn("provenance: stage already attested with different content; keeping the first",
					"job_id", req.JobID, "stage", req.Stage, "digest", old.Digest)
			}
		}
		return old, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	payload, err := r.statement(req)
	if err != nil {
		return nil, err
	}
	env, err := SignEnvelope(ctx, r.key, PayloadTypeInToto, payload)
	if err != nil {
		return nil, err
	}
	a := &Attestation{JobID: req.JobID, Stage: req.Stage, Digest: Digest(env), Envelope: env, SignerPublicKey: string(r.key.PublicPEM())}
	created, err := r.store.create(a)
	if err != nil {
		return nil, err
	}
	if !created { // another process signed this stage first: use its envelope
		return r.store.Get(req.JobID, req.Stage)
	}
	return a, nil
}

// statement builds the statement bytes for req; r.mu held.
func (r *Recorder) statement(req AttestRequest) ([]byte, error) {
	h := Header{JobID: req.JobID, Stage: req.Stage, Previous: req.Previous}
	if seq, ok := DeploymentSeq(req.Stage); ok {
		if _, err := r.store.Get(req.JobID, StageSpec); err == nil {
			return nil, fmt.Errorf("%w: %s is a job's ID, not a deployment's", ErrBadStatement, req.JobID)
		}
		return r.deploymentStatement(h, seq, req)
	}
	if _, err := r.store.Get(req.JobID, DeploymentStage(1)); err == nil {
		return nil, fmt.Errorf("%w: %s is a deployment's name, not a job's", ErrBadStatement, req.JobID)
	}
	idx := StageIndex(req.Stage)
	if idx < 0 {
		return nil, fmt.Errorf("%w: unknown stage %q", ErrBadStatement, req.Stage)
	}
	if idx > 0 && h.Previous == "" {
		prev, err := r.store.Get(req.JobID, Stages[idx-1])
		if err != nil {
			return nil, fmt.Errorf("provenance: stage %s of %s: previous stage %s not attested: %w", req.Stage, req.JobID, Stages[idx-1], err)
		}
		h.Previous = prev.Digest
	}
	subjects := req.Subjects
	if idx == 0 {
		var sp SpecPredicate
		if err := json.Unmarshal(req.Predicate, &sp); err != nil || !ValidDigest(sp.DocumentDigest) {
			return nil, fmt.Errorf("%w: spec predicate needs document_digest sha256:<hex>", ErrBadStatement)
		}
		h.SpecDigest = sp.DocumentDigest
		subjects = append([]Subject{{Name: "spec", Digest: sp.DocumentDigest}}, subjects...)
	} else if spec, err := r.store.Get(req.JobID, StageSpec); errors.Is(err, ErrNotFound) && ValidDigest(req.SpecDigest) {
		h.SpecDigest = req.SpecDigest
	} else if err == nil {
		if _, payload, err := ParseEnvelope(spec.Envelope); err == nil {
			if st, err := ParseStatement(payload); err == nil {
				if sh, err := st.Header(); err == nil {
					h.SpecDigest = sh.SpecDigest
				}
			}
		}
	}
	return BuildStatement(h, subjects, req.Predicate)
}

// deploymentStatement builds a deployment event's statement: seq links
// the envelope of seq-1 (taken from the store when req.Previous is empty),
// and the header's spec digest is req.SpecDigest (the deployment's current
// release). r.mu held.
func (r *Recorder) deploymentStatement(h Header, seq int, req AttestRequest) ([]byte, error) {
	if seq > 1 && h.Previous == "" {
		prev, err := r.store.Get(req.JobID, DeploymentStage(seq-1))
		if err != nil {
			return nil, fmt.Errorf("provenance: event %d of deployment %s: previous event not attested: %w", seq, req.JobID, err)
		}
		h.Previous = prev.Digest
	}
	if ValidDigest(req.SpecDigest) {
		h.SpecDigest = req.SpecDigest
	}
	return BuildStatement(h, req.Subjects, req.Predicate)
}
