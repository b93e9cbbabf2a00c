package provenance

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sigstore/rekor/pkg/util"
	"github.com/sigstore/rekor/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/witness"
)

// Problem is one failed audit check.
type Problem struct {
	// Stage is the stage the check concerns ("log" for the log key).
	Stage string `json:"stage"`
	// Check names the check: envelope, signature, signer, statement,
	// log-entry, inclusion-proof, checkpoint, signed-entry-timestamp, chain,
	// job, spec-digest, outputs, amounts, consistency, witness.
	Check   string `json:"check"`
	Message string `json:"message"`
}

func (p Problem) String() string { return "stage " + p.Stage + ": " + p.Check + ": " + p.Message }

// StageReport describes one verified stage.
type StageReport struct {
	Stage  string `json:"stage"`
	Digest string `json:"digest"`
	Signer string `json:"signer,omitempty"`
	// Party is the trust scope the signer signed the stage under (operator,
	// provider:<name>, verifier, or the legacy stage); empty when the signer
	// is not allowed to sign the stage (see the "signer" problem).
	Party          string    `json:"party,omitempty"`
	UUID           string    `json:"uuid,omitempty"`
	LogIndex       int64     `json:"log_index"`
	IntegratedTime time.Time `json:"integrated_time"`
	// Parts are, for a split job's placement and execution (job layout
	// 10), the providers' signed parts and who signed each.
	Parts []PartReport `json:"parts,omitempty"`
}

// Report is the outcome of Verify.
type Report struct {
	JobID    string        `json:"job_id"`
	OK       bool          `json:"ok"`
	Complete bool          `json:"complete"`
	Stages   []StageReport `json:"stages"`
	Problems []Problem     `json:"problems,omitempty"`
	// LogKey is the fingerprint of the log's key.
	LogKey string `json:"log_key"`
	// Witnesses are the valid cosignatures of trusted witnesses on the
	// receipt's witnessed checkpoint.
	Witnesses []witness.Cosignature `json:"witnesses,omitempty"`
	// Parties is set when every stage had to be signed by its own party
	// (VerifyOptions.Parties).
	Parties bool `json:"parties,omitempty"`
}

// Err returns nil when the report has no problems, else an error wrapping
// ErrAudit that lists every problem.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	msgs := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		msgs[i] = p.String()
	}
	return fmt.Errorf("%w: job %s: %s", ErrAudit, r.JobID, strings.Join(msgs, "; "))
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// AllowIncomplete accepts a chain that stops before settlement (a job
	// still running). A chain ending at a denied admission is complete.
	AllowIncomplete bool
	// Witnesses is how many valid cosignatures of distinct trusted
	// witnesses the receipt's witnessed checkpoint must carry (0: none).
	Witnesses int
	// WitnessKeys are the trusted witnesses' verifier keys, C2SP vkey lines
	// ("name+keyID+base64(0x04 || Ed25519 public key)", as `accord witness
	// key` prints them).
	WitnessKeys []string
	// Parties requires every stage to be signed by its own party's key
	// (StageSigners): a key trusted only for the legacy ScopeStage no longer
	// counts.
	Parties bool
}

// Verify checks a receipt offline: every envelope's signature against the
// keys trust allows to sign stages, and its signer against the stage's
// party (StageSigners: the operator, the provider the negotiation awarded,
// the verifier; a key trusted for ScopeStage may sign any stage unless
// opts.Parties; a failure is a Problem of check "signer" that names the
// party that had to sign, the key that did and that key's scopes); the
// statement against its stage; every log entry (body matches the envelope,
// inclusion proof, checkpoint signature, signed entry timestamp) against
// the receipt's log key, which trust must allow for "log"; and the chain:
// stages in order with none missing, each linking the previous envelope's
// digest, one job, one spec digest, execution outputs equal to the verified
// outputs, and settled amounts consistent with the negotiated price, the
// escrow held and the measured usage. A witnessed checkpoint, when the
// receipt has one, must be signed by the log key and extend every entry's
// checkpoint; opts.Witnesses > 0 requires that many valid cosignatures on
// it from opts.WitnessKeys (a Problem of stage "log", check "witness", says
// how many were found and from whom).
//
// A split job (job layout 10: the negotiation has Parts) is checked part by
// part: its placement and execution statements are the operator's, and
// each of their SignedParts must verify with a key of provider:<part
// provider> (ScopeStage too unless opts.Parties; the report's StageReport
// Parts say who signed each); each part statement must be of its stage,
// job, spec and previous envelope, name its provider and tasks, and agree
// with the operator's statement (the one escrow hold; its tasks' runs and
// outputs). The negotiated parts must have distinct providers, prices
// summing to the price and tasks partitioning the spec's; the placement's
// parts must be the negotiated ones, the execution's the negotiated ones
// after the failovers (ExecutingParts); the settlement record must settle
// each final part provider as a whole job is settled, its amounts the
// parts' sums. A split job has no spot check.
//
// The report lists every problem found (each naming its stage); the error
// is report.Err(). Verify never calls out: it is safe on untrusted input.
func Verify(ctx context.Context, r *Receipt, trust *TrustStore, opts VerifyOptions) (*Report, error) {
	a := &auditor{ctx: ctx, r: r, trust: trust, rep: &Report{JobID: r.JobID, Parties: opts.Parties}}
	a.run(opts)
	a.rep.OK = len(a.rep.Problems) == 0
	return a.rep, a.rep.Err()
}

type auditor struct {
	ctx   context.Context
	r     *Receipt
	trust *TrustStore
	rep   *Report
	logV  signature.Verifier
	// stageKeys are the keys trust allows to sign some stage.
	stageKeys []crypto.PublicKey

	// decoded per stage (nil when the stage is missing or undecodable)
	stmts map[string]*Statement
	// checkpoints already verified (entries of one receipt share them)
	cps map[string]cpResult
	// parts are a split job's verified part statements per stage, in the
	// order of the stage's Parts (nil where a part did not verify).
	parts map[string][]*Statement
}

type cpResult struct {
	sc  *util.SignedCheckpoint
	err error
}

// checkpoint parses and verifies a signed checkpoint once per receipt.
func (a *auditor) checkpoint(s string) (*util.SignedCheckpoint, error) {
	if r, ok := a.cps[s]; ok {
		return r.sc, r.err
	}
	sc, err := parseCheckpoint(s)
	if err == nil && !sc.Verify(a.logV) {
		err = errors.New("signature on checkpoint did not verify")
	}
	if a.cps == nil {
		a.cps = map[string]cpResult{}
	}
	a.cps[s] = cpResult{sc, err}
	return sc, err
}

func (a *auditor) fail(stage, check, format string, args ...any) {
	a.rep.Problems = append(a.rep.Problems, Problem{Stage: stage, Check: check, Message: fmt.Sprintf(format, args...)})
}

func (a *auditor) run(opts VerifyOptions) {
	a.stmts = map[string]*Statement{}
	a.stageKeys = a.trust.StageKeys()
	a.logKey()
	if isDeploymentReceipt(a.r) {
		a.runDeployment(opts)
		return
	}
	var prevDigest, prevStage string
	var specDigest string
	var signed []signedStage
	seen := map[string]bool{}
	for i, att := range a.r.Attestations {
		stage := att.Stage
		if stage == "" {
			stage = fmt.Sprintf("#%d", i)
		}
		envDigest := Digest(att.Envelope)
		sr := StageReport{Stage: stage, Digest: envDigest}
		// Order: the i-th attestation must be the i-th stage.
		switch idx := StageIndex(att.Stage); {
		case idx < 0:
			a.fail(stage, "chain", "unknown stage %q", att.Stage)
		case seen[att.Stage]:
			a.fail(stage, "chain", "stage appears twice")
		case i < len(Stages) && idx != i:
			if idx > i {
				a.fail(stage, "chain", "stage %s missing: %s follows %s", strings.Join(Stages[i:idx], ", "), att.Stage, orStart(prevStage))
			} else {
				a.fail(stage, "chain", "stage out of order: %s after %s", att.Stage, prevStage)
			}
		}
		seen[att.Stage] = true
		if att.JobID != "" && att.JobID != a.r.JobID {
			a.fail(stage, "job", "attestation is for job %s, receipt is for job %s", att.JobID, a.r.JobID)
		}
		if att.Digest != "" && att.Digest != envDigest {
			a.fail(stage, "envelope", "recorded digest %s does not match the envelope (%s)", att.Digest, envDigest)
		}
		payload, signer := a.envelope(stage, att)
		sr.Signer = signer
		if payload != nil && StageIndex(att.Stage) >= 0 {
			signed = append(signed, signedStage{stage: att.Stage, report: i, keyID: signer})
		}
		if payload != nil {
			if st := a.statement(stage, att.Stage, payload); st != nil {
				a.stmts[att.Stage] = st
				h, _ := st.Header()
				if i > 0 && h.Previous != prevDigest {
					a.fail(stage, "chain", "previous digest %s does not match the %s envelope (%s)", orNone(h.Previous), prevStage, prevDigest)
				}
				if i == 0 && h.Previous != "" {
					a.fail(stage, "chain", "first stage links a previous envelope %s", h.Previous)
				}
				if att.Stage == StageSpec {
					specDigest = h.SpecDigest
				} else if specDigest != "" && h.SpecDigest != "" && h.SpecDigest != specDigest {
					a.fail(stage, "spec-digest", "spec digest %s does not match the spec stage's %s", h.SpecDigest, specDigest)
				}
			}
		}
		a.entry(stage, att, payload, &sr)
		a.rep.Stages = append(a.rep.Stages, sr)
		prevDigest, prevStage = envDigest, att.Stage
	}
	a.signers(signed, opts.Parties)
	a.crossChecks()
	a.witnessed(opts)
	// Completeness.
	n := len(a.r.Attestations)
	last := ""
	if n > 0 {
		last = a.r.Attestations[n-1].Stage
	}
	var adm AdmissionPredicate
	denied := last == StageAdmission && a.stmts[StageAdmission] != nil &&
		a.stmts[StageAdmission].DecodePredicate(&adm) == nil && !adm.Allowed
	a.rep.Complete = last == StageSettlement || denied
	if !a.rep.Complete && !opts.AllowIncomplete {
		next := "spec"
		if i := StageIndex(last); i >= 0 && i+1 < len(Stages) {
			next = Stages[i+1]
		}
		a.fail(next, "chain", "stage %s missing: receipt ends at %s", next, orNone(last))
	}
}

func orStart(s string) string {
	if s == "" {
		return "the start"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// logKey checks the receipt's log key is trusted for "log".
func (a *auditor) logKey() {
	pub, err := ParsePublicKeyPEM([]byte(a.r.Log.PublicKey))
	if err != nil {
		a.fail("log", "log-key", "receipt's log public key: %v", err)
		return
	}
	id, _ := Fingerprint(pub)
	a.rep.LogKey = id
	if !a.trust.Allowed(id, ScopeLog) {
		a.fail("log", "log-key", "log key %s is not trusted for scope %q", id, ScopeLog)
	}
	if a.logV, err = LoadVerifier(pub); err != nil {
		a.fail("log", "log-key", "%v", err)
	}
}

// envelope verifies the signature against the keys trusted to sign some
// stage; whether the signer may sign this stage is signers' question.
func (a *auditor) envelope(stage string, att *Attestation) (payload []byte, signer string) {
	if _, _, err := ParseEnvelope(att.Envelope); err != nil {
		a.fail(stage, "envelope", "%v", err)
		return nil, ""
	}
	payload, id, err := VerifyEnvelope(a.ctx, att.Envelope, a.stageKeys...)
	if err == nil {
		return payload, id
	}
	// Say why: altered, or signed by a key the auditor does not trust.
	if pub, perr := ParsePublicKeyPEM([]byte(att.SignerPublicKey)); perr == nil {
		if _, sid, verr := VerifyEnvelope(a.ctx, att.Envelope, pub); verr == nil {
			a.fail(stage, "signature", "envelope signed by key %s, which is not trusted to sign stages (%s)", sid, a.scopesOf(sid))
			return nil, sid
		}
	}
	ids, _ := EnvelopeSignerIDs(att.Envelope)
	a.fail(stage, "signature", "envelope signature does not verify with any trusted stage key (claims key %s): the envelope was altered or signed by an unknown key", strings.Join(ids, ","))
	return nil, ""
}

// signedStage is a stage whose envelope verified with a trusted stage key.
type signedStage struct {
	stage  string
	report int // index in rep.Stages
	keyID  string
}

// StageSigners returns the trust scopes of the parties that may sign stage
// in a job the negotiation awarded to provider, the stage's own party
// first: operator for spec, admission, negotiation and settlement;
// provider:<provider> for placement and execution (none when provider is
// not a valid provider name); verifier, then operator, for verification.
// ScopeStage is not among them: Verify accepts it besides these unless
// VerifyOptions.Parties.
func StageSigners(stage, provider string) []string {
	switch stage {
	case StageSpec, StageAdmission, StageNegotiation, StageSettlement:
		return []string{ScopeOperator}
	case StagePlacement, StageExecution:
		if names.Provider(provider) != nil {
			return nil
		}
		return []string{ProviderScope(provider)}
	case StageVerification:
		return []string{ScopeVerifier, ScopeOperator}
	}
	return nil
}

// signers checks that each signed stage was signed by a key of its party.
func (a *auditor) signers(signed []signedStage, parties bool) {
	provider := a.awardedProvider()
	placer, executor := a.placer(provider), a.executor(provider)
	split := len(a.negotiatedParts()) > 0
	for _, s := range signed {
		p := provider
		switch s.stage {
		case StagePlacement:
			p = placer
		case StageExecution:
			p = executor
		}
		want := StageSigners(s.stage, p)
		if split && (s.stage == StagePlacement || s.stage == StageExecution) {
			// The operator states a split job's placement and execution;
			// each provider signs its own part.
			want = []string{ScopeOperator}
		}
		allowed := want
		if !parties {
			allowed = append(slices.Clip(want), ScopeStage)
		}
		if party := a.party(s, allowed); party != "" {
			a.rep.Stages[s.report].Party = party
			continue
		}
		must := strings.Join(want, " or ")
		if len(want) == 0 {
			must = fmt.Sprintf("the provider the negotiation awarded (%s)", a.awardDescription(provider))
		}
		a.fail(s.stage, "signer", "must be signed by %s, signed by key %s (%s)", must, s.keyID, a.scopesOf(s.keyID))
	}
	if split {
		a.signedParts(StagePlacement, parties)
		a.signedParts(StageExecution, parties)
	}
}

// party returns the first of scopes that the key which signed s holds, or
// "". (The log takes one public key per entry: a stage has one signer.)
func (a *auditor) party(s signedStage, scopes []string) string {
	for _, sc := range scopes {
		if a.trust.Allowed(s.keyID, sc) {
			return sc
		}
	}
	return ""
}

// awardedProvider is the provider a verified negotiation statement names,
// or "".
func (a *auditor) awardedProvider() string {
	st := a.stmts[StageNegotiation]
	if st == nil {
		return ""
	}
	var neg NegotiationPredicate
	if st.DecodePredicate(&neg) != nil {
		return ""
	}
	return neg.Provider
}

// executor is the provider that ran the job's tasks: the negotiation's,
// or after failovers (job layout 6) the last replacement's.
func (a *auditor) executor(awarded string) string {
	return a.replacement(StageExecution, awarded)
}

// placer is the provider that accepted the placement: the negotiation's,
// or after failovers before it accepted (job layout 11) the last
// replacement's.
func (a *auditor) placer(awarded string) string {
	return a.replacement(StagePlacement, awarded)
}

// replacement follows the failovers stage's statement names from the
// awarded provider.
func (a *auditor) replacement(stage, awarded string) string {
	return ReplacedProvider(a.stmts[stage], awarded)
}

// ReplacedProvider follows the failovers a placement or execution
// statement st names from the awarded provider to the one that must have
// signed it; awarded when st is nil or names none it can follow.
func ReplacedProvider(st *Statement, awarded string) string {
	if st == nil {
		return awarded
	}
	var v struct {
		Failovers []predicate.Failover `json:"failovers"`
	}
	if st.DecodePredicate(&v) != nil {
		return awarded
	}
	p, _ := ExecutingProvider(awarded, v.Failovers)
	return p
}

// ExecutingProvider follows the failovers from the awarded provider: each
// must abandon the provider then running the tasks for another. It
// returns the provider that ran them and what breaks the chain, if
// anything.
func ExecutingProvider(awarded string, fs []predicate.Failover) (string, string) {
	p := awarded
	for i, f := range fs {
		switch {
		case f.Lost != p:
			return p, fmt.Sprintf("failover %d abandons provider %q, the tasks were on %q", i+1, f.Lost, p)
		case f.Provider == "" || f.Provider == f.Lost:
			return p, fmt.Sprintf("failover %d from %q names no other provider", i+1, f.Lost)
		}
		p = f.Provider
	}
	return p, ""
}

func (a *auditor) awardDescription(provider string) string {
	switch {
	case a.stmts[StageNegotiation] == nil:
		return "no verified negotiation stage"
	case provider == "":
		return "the negotiation names none"
	default:
		return fmt.Sprintf("the negotiation names %q, not a valid provider name", provider)
	}
}

// scopesOf describes a key's trust scopes.
func (a *auditor) scopesOf(id string) string {
	k, ok := a.trust.Lookup(id)
	if !ok {
		return "not in the trust store"
	}
	if len(k.Scopes) == 0 {
		return "no scopes"
	}
	return strings.Join(k.Scopes, ", ")
}

// statement parses and checks the statement of one stage.
func (a *auditor) statement(stage, want string, payload []byte) *Statement {
	st, err := ParseStatement(payload)
	if err != nil {
		a.fail(stage, "statement", "%v", err)
		return nil
	}
	if st.PredicateType != PredicateType(want) {
		a.fail(stage, "statement", "predicate type %s, want %s", st.PredicateType, PredicateType(want))
	}
	h, err := st.Header()
	if err != nil {
		a.fail(stage, "statement", "%v", err)
		return nil
	}
	if h.Stage != want {
		a.fail(stage, "statement", "statement is for stage %q", h.Stage)
	}
	if h.JobID != a.r.JobID {
		a.fail(stage, "job", "statement is for job %s, receipt is for job %s", h.JobID, a.r.JobID)
	}
	if !hasJobSubject(st, a.r.JobID) {
		a.fail(stage, "job", "statement has no subject %s%s", JobSubjectPrefix, a.r.JobID)
	}
	return st
}

// hasJobSubject reports whether st has the job's subject.
func hasJobSubject(st *Statement, jobID string) bool {
	for _, s := range st.Subjects() {
		if s.Name == JobSubjectPrefix+jobID && s.Digest == JobDigest(jobID) {
			return true
		}
	}
	return false
}

// entry checks the log entry of one stage.
func (a *auditor) entry(stage string, att *Attestation, payload []byte, sr *StageReport) {
	e := att.Entry
	if e == nil {
		a.fail(stage, "log-entry", "attestation was never logged (no entry)")
		return
	}
	sr.UUID = e.UUID
	if e.LogIndex != nil {
		sr.LogIndex = *e.LogIndex
	}
	if e.IntegratedTime != nil {
		sr.IntegratedTime = time.Unix(*e.IntegratedTime, 0).UTC()
	}
	bodyStr, ok := e.Body.(string)
	if !ok {
		a.fail(stage, "log-entry", "entry body is %T, want base64 string", e.Body)
		return
	}
	body, err := base64.StdEncoding.DecodeString(bodyStr)
	if err != nil {
		a.fail(stage, "log-entry", "entry body: %v", err)
		return
	}
	var b struct {
		Kind string `json:"kind"`
		Spec struct {
			Content struct {
				Hash        struct{ Value string } `json:"hash"`
				PayloadHash struct{ Value string } `json:"payloadHash"`
			} `json:"content"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Kind != "intoto" {
		a.fail(stage, "log-entry", "entry body is not an intoto entry")
		return
	}
	if want := hexDigest(att.Envelope); b.Spec.Content.Hash.Value != want {
		a.fail(stage, "log-entry", "log entry records envelope hash %s, the envelope hashes to %s", b.Spec.Content.Hash.Value, want)
	}
	if payload != nil {
		if want := hexDigest(payload); b.Spec.Content.PayloadHash.Value != want {
			a.fail(stage, "log-entry", "log entry records payload hash %s, the statement hashes to %s", b.Spec.Content.PayloadHash.Value, want)
		}
	}
	if wantLeaf := hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(body)); !strings.HasSuffix(strings.ToLower(e.UUID), wantLeaf) {
		a.fail(stage, "log-entry", "entry UUID %s is not the leaf hash of its body (%s)", e.UUID, wantLeaf)
	}
	if e.Verification == nil || e.Verification.InclusionProof == nil {
		a.fail(stage, "inclusion-proof", "no inclusion proof")
		return
	}
	ip := e.Verification.InclusionProof
	if ip.LogIndex == nil || ip.TreeSize == nil || ip.RootHash == nil || ip.Checkpoint == nil {
		a.fail(stage, "inclusion-proof", "inclusion proof incomplete (log index, tree size, root hash or checkpoint missing)")
		return
	}
	if err := verify.VerifyInclusion(a.ctx, &e.LogEntryAnon); err != nil {
		a.fail(stage, "inclusion-proof", "entry %d not proven in tree of size %d: %v", *ip.LogIndex, *ip.TreeSize, err)
	}
	if a.logV == nil {
		return
	}
	// verify.VerifyCheckpointSignature's checks, with the signature checked
	// once per distinct checkpoint.
	if sc, err := a.checkpoint(*ip.Checkpoint); err != nil {
		a.fail(stage, "checkpoint", "%v (not signed by the log key %s?)", err, a.rep.LogKey)
	} else {
		if hex.EncodeToString(sc.Hash) != strings.ToLower(*ip.RootHash) {
			a.fail(stage, "checkpoint", "proof root hash %s does not match the checkpoint's %x", *ip.RootHash, sc.Hash)
		}
		if int64(sc.Size) != *ip.TreeSize {
			a.fail(stage, "checkpoint", "checkpoint size %d, inclusion proof tree size %d", sc.Size, *ip.TreeSize)
		}
	}
	if e.LogIndex == nil || e.IntegratedTime == nil || e.LogID == nil {
		a.fail(stage, "signed-entry-timestamp", "entry lacks log index, integrated time or log ID")
		return
	}
	if err := verify.VerifySignedEntryTimestamp(a.ctx, &e.LogEntryAnon, a.logV); err != nil {
		a.fail(stage, "signed-entry-timestamp", "%v", err)
	}
}

func parseCheckpoint(s string) (*util.SignedCheckpoint, error) {
	sc := &util.SignedCheckpoint{}
	if err := sc.UnmarshalText([]byte(s)); err != nil {
		return nil, err
	}
	return sc, nil
}

// crossChecks compares the typed predicates of different stages.
func (a *auditor) crossChecks() {
	var (
		spec SpecPredicate
		adm  AdmissionPredicate
		neg  NegotiationPredicate
		pl   PlacementPredicate
		ex   ExecutionPredicate
		ver  VerificationPredicate
		set  SettlementPredicate
	)
	has := func(stage string, v any) bool {
		st := a.stmts[stage]
		if st == nil {
			return false
		}
		if err := st.DecodePredicate(v); err != nil {
			a.fail(stage, "statement", "%v", err)
			return false
		}
		return true
	}
	hasSpec, hasAdm, hasNeg := has(StageSpec, &spec), has(StageAdmission, &adm), has(StageNegotiation, &neg)
	hasPl, hasEx, hasVer, hasSet := has(StagePlacement, &pl), has(StageExecution, &ex), has(StageVerification, &ver), has(StageSettlement, &set)

	if hasSpec {
		if spec.SpecDigest != spec.DocumentDigest {
			a.fail(StageSpec, "spec-digest", "header spec digest %s differs from document digest %s", spec.SpecDigest, spec.DocumentDigest)
		}
		if !subjectsHaveDigest(a.stmts[StageSpec], spec.DocumentDigest) {
			a.fail(StageSpec, "spec-digest", "no subject carries the document digest %s", spec.DocumentDigest)
		}
	}
	if hasAdm && !adm.Allowed && len(a.r.Attestations) > 2 {
		a.fail(StageAdmission, "chain", "admission denied (%s) but the job went on", adm.Reason)
	}
	if hasNeg && hasSpec && spec.Currency != "" && neg.Currency != spec.Currency {
		a.fail(StageNegotiation, "amounts", "negotiated in %s, spec budget is in %s", neg.Currency, spec.Currency)
	}
	if hasNeg && neg.Price < 0 {
		a.fail(StageNegotiation, "amounts", "negative price %d", neg.Price)
	}
	if hasPl && hasNeg {
		a.placementFailovers(neg, pl, ex, hasEx)
		if pl.Currency != neg.Currency {
			a.fail(StagePlacement, "amounts", "escrow held in %s, price negotiated in %s", pl.Currency, neg.Currency)
		}
		if pl.Held < neg.Price {
			a.fail(StagePlacement, "amounts", "escrow held %d is less than the negotiated price %d", pl.Held, neg.Price)
		}
	}
	split := hasNeg && len(neg.Parts) > 0
	if !split {
		a.unsplit(pl, hasPl, ex, hasEx)
	}
	var execOut map[string]string
	if hasEx {
		execOut = map[string]string{}
		for name, t := range ex.Tasks {
			for _, o := range t.Outputs {
				execOut[name+":"+o.Path] = "sha256:" + strings.ToLower(o.SHA256)
			}
		}
		subj := artifactSubjects(a.r.JobID, a.stmts[StageExecution])
		if diff := diffOutputs(execOut, subj); diff != "" {
			a.fail(StageExecution, "outputs", "subjects do not match the task outputs: %s", diff)
		}
		if ex.SpotRole != "" {
			a.fail(StageExecution, "statement", "the execution stage is a spot check's %s run, not the job's", ex.SpotRole)
		}
		if hasNeg && !split {
			want, why := ExecutingProvider(neg.Provider, ex.Failovers)
			if why != "" {
				a.fail(StageExecution, "failover", "%s", why)
			}
			if ex.Provider != "" && ex.Provider != want {
				a.fail(StageExecution, "placement", "executed by provider %q, negotiation and failovers awarded %q", ex.Provider, want)
			}
		}
	}
	if hasVer {
		allPassed := len(ver.Tests) > 0
		for _, t := range ver.Tests {
			allPassed = allPassed && t.Passed
		}
		if ver.Passed && !allPassed && len(ver.Tests) > 0 {
			a.fail(StageVerification, "verification", "claims passed but a test failed")
		}
		if ver.SpotCheck != nil && !split {
			a.spotCheck(ver.SpotCheck, execOut, hasEx)
		}
		if hasEx {
			want, what := execOut, "the execution outputs"
			if sc := ver.SpotCheck; sc != nil && sc.Verdict == predicate.SpotReversed {
				// A spot check found the executing provider in the
				// minority: the job kept the majority's outputs.
				want, what = spotOutputs(sc), "the spot check's majority outputs"
			}
			subj := artifactSubjects(a.r.JobID, a.stmts[StageVerification])
			if diff := diffOutputs(want, subj); diff != "" {
				a.fail(StageVerification, "outputs", "verified outputs differ from %s: %s", what, diff)
			}
		}
	}
	var final []predicate.Part
	if split {
		final = a.splitChecks(spec, hasSpec, neg, pl, hasPl, ex, hasEx, ver, hasVer, execOut)
	}
	if hasSet {
		a.settlement(set, neg, hasNeg, pl, hasPl, ex, hasEx, ver, hasVer, final)
	}
}

// placementFailovers checks the placement's provider against the
// negotiation's after the failovers the placement names (job layout 11:
// providers lost before they accepted it; for a split job, the first
// part's provider), and that the execution's failovers begin with them.
func (a *auditor) placementFailovers(neg NegotiationPredicate, pl PlacementPredicate, ex ExecutionPredicate, hasEx bool) {
	const st = StagePlacement
	want, why := ExecutingProvider(neg.Provider, pl.Failovers)
	if len(neg.Parts) > 0 {
		var parts []predicate.Part
		parts, why = ExecutingParts(neg.Parts, pl.Failovers)
		want = parts[0].Provider
	}
	if why != "" {
		a.fail(st, "failover", "%s", why)
	}
	switch {
	case pl.Provider == "" || pl.Provider == want:
	case len(pl.Failovers) == 0:
		a.fail(st, "placement", "placed with provider %q, negotiation awarded %q", pl.Provider, want)
	default:
		a.fail(st, "placement", "placed with provider %q, negotiation and failovers awarded %q", pl.Provider, want)
	}
	n := len(pl.Failovers)
	if hasEx && (len(ex.Failovers) < n || !slices.EqualFunc(ex.Failovers[:n], pl.Failovers, sameFailover)) {
		a.fail(StageExecution, "failover", "the execution's failovers do not begin with the %d the placement names", n)
	}
}

// sameFailover reports whether two statements record the same failover.
func sameFailover(x, y predicate.Failover) bool {
	return x.Lost == y.Lost && x.RunID == y.RunID && x.At.Equal(y.At) && x.Reason == y.Reason && x.Provider == y.Provider &&
		x.Price == y.Price && x.Currency == y.Currency && x.Reputation == y.Reputation && slices.Equal(x.Tasks, y.Tasks) &&
		(x.SLA == nil) == (y.SLA == nil) && (x.SLA == nil || *x.SLA == *y.SLA)
}

// unsplit reports the parts of a job whose negotiation split nothing.
func (a *auditor) unsplit(pl PlacementPredicate, hasPl bool, ex ExecutionPredicate, hasEx bool) {
	if hasPl && (len(pl.Parts) > 0 || len(pl.PartTasks) > 0) {
		a.fail(StagePlacement, "parts", "placement lists parts, the negotiation split nothing")
	}
	if hasEx && (len(ex.Parts) > 0 || len(ex.PartTasks) > 0) {
		a.fail(StageExecution, "parts", "execution lists parts, the negotiation split nothing")
	}
	moves := func(stage string, fs []predicate.Failover) {
		for i, f := range fs {
			if len(f.Tasks) > 0 {
				a.fail(stage, "failover", "failover %d moves tasks %s, the negotiation split nothing", i+1, taskList(f.Tasks))
			}
		}
	}
	moves(StagePlacement, pl.Failovers)
	moves(StageExecution, ex.Failovers)
}

// settlement checks the settled amounts. final are a split job's parts as
// they finally ran (nil for a job that is not split): its price is their
// sum, and its usage is checked part by part (settlementParts) rather than
// at the top level.
func (a *auditor) settlement(set SettlementPredicate, neg NegotiationPredicate, hasNeg bool, pl PlacementPredicate, hasPl bool, ex ExecutionPredicate, hasEx bool, ver VerificationPredicate, hasVer bool, final []predicate.Part) {
	split := final != nil
	const st = StageSettlement
	bad := func(format string, args ...any) { a.fail(st, "amounts", format, args...) }
	if set.Paid < 0 || set.Refunded < 0 {
		bad("negative amounts: paid %d, refunded %d", set.Paid, set.Refunded)
	}
	if hasNeg && set.Currency != neg.Currency {
		bad("settled in %s, price negotiated in %s", set.Currency, neg.Currency)
	}
	if hasPl && set.Paid+set.Refunded != pl.Held {
		bad("paid %d + refunded %d = %d, escrow held %d", set.Paid, set.Refunded, set.Paid+set.Refunded, pl.Held)
	}
	// The ledger's record carries the usage and rates it settled on; the
	// predicate's own fields, when present, take precedence.
	attested := set.Usage
	var rec SettlementRecord
	hasRec := len(set.Record) > 0 && string(set.Record) != "null"
	if hasRec {
		if err := json.Unmarshal(set.Record, &rec); err != nil {
			a.fail(st, "statement", "settlement record: %v", err)
			return
		}
		if set.Usage == nil {
			set.Usage = rec.Usage
		}
		if set.Rates == nil {
			set.Rates = rec.Rates
		}
	}
	// Model fees are paid from the escrow before the charge: part of what
	// the tenant paid, none of the compute charge.
	fees := int64(0)
	for _, f := range rec.ModelFees {
		for _, s := range f.Shares {
			if s.Amount < 0 {
				bad("model fee %s pays %d to %s", f.Model, s.Amount, s.Account)
			}
			fees += s.Amount
		}
	}
	if fees != rec.ModelFeeTotal {
		bad("model fee shares sum to %d, recorded total %d", fees, rec.ModelFeeTotal)
	}
	// The price and usage billed: the negotiation's and the execution's,
	// unless a failover or a reversed spot check moved the job (layout 6).
	price, usage := billed(neg, ex, hasEx, ver, hasVer)
	if split {
		price = 0
		for _, p := range final {
			price = addSat(price, p.Price)
		}
	}
	if hasVer && !ver.Passed && set.Paid > 0 && hasNeg && set.Paid-fees > price {
		bad("verification failed yet paid %d (and %d in model fees), above the negotiated price %d", set.Paid-fees, fees, price)
	}
	if set.Usage != nil && hasEx && !split {
		checkUsage(bad, "", *set.Usage, usage)
	}
	if !hasRec {
		if split {
			bad("a split job's settlement has no record of its parts")
		}
		return
	}
	if split {
		a.settlementParts(rec, attested, final, ex, hasEx)
	} else if len(rec.Parts) > 0 {
		bad("the record settles parts, the negotiation split nothing")
	}
	if rec.Currency != "" && rec.Currency != set.Currency {
		bad("record currency %s, attested %s", rec.Currency, set.Currency)
	}
	if hasPl && rec.Held != pl.Held {
		bad("record held %d, placement held %d", rec.Held, pl.Held)
	}
	if m := rec.Metered; m.Wall+m.CPU+m.Mem+m.GPU != m.Total {
		bad("metered components %d+%d+%d+%d do not sum to total %d", m.Wall, m.CPU, m.Mem, m.GPU, m.Total)
	}
	if set.Usage != nil && set.Rates != nil && !split {
		u, r := set.Usage, set.Rates
		for _, c := range []struct {
			what      string
			got       int64
			qty, rate int64
		}{{"wall", rec.Metered.Wall, u.WallMillis, r.WallPerHour}, {"cpu", rec.Metered.CPU, u.CPUMillis, r.CPUPerHour},
			{"memory", rec.Metered.Mem, u.MemGBMillis, r.MemGBPerHour}, {"gpu", rec.Metered.GPU, u.GPUMillis, r.GPUPerHour}} {
			if want, ok := meter(c.qty, c.rate); !ok || want != c.got {
				bad("metered %s charge %d, usage %d ms at %d/h gives %d", c.what, c.got, c.qty, c.rate, want)
			}
		}
	}
	if hasNeg && rec.Charge != 0 {
		want := min(price+rec.Metered.Total, rec.Held-fees)
		switch {
		case rec.Charge == want:
		case fees == 0:
			bad("charge %d, negotiated price %d + metered %d capped at held %d gives %d", rec.Charge, price, rec.Metered.Total, rec.Held, want)
		default:
			bad("charge %d, negotiated price %d + metered %d capped at held %d less model fees %d gives %d", rec.Charge, price, rec.Metered.Total, rec.Held, fees, want)
		}
	}
	if rec.Payable != rec.Charge-rec.SLARefund {
		bad("payable %d, charge %d - SLA refund %d gives %d", rec.Payable, rec.Charge, rec.SLARefund, rec.Charge-rec.SLARefund)
	}
	roy := int64(0)
	for _, r := range rec.Royalties {
		roy += r.Amount
	}
	if rec.ProviderPay+rec.PlatformFee+roy != rec.Payable {
		bad("provider %d + fee %d + royalties %d = %d, payable %d", rec.ProviderPay, rec.PlatformFee, roy, rec.ProviderPay+rec.PlatformFee+roy, rec.Payable)
	}
	if rec.Refund != rec.Held-fees-rec.Payable {
		bad("refund %d, held %d - model fees %d - payable %d gives %d", rec.Refund, rec.Held, fees, rec.Payable, rec.Held-fees-rec.Payable)
	}
	if set.Paid != rec.Payable+fees {
		bad("attested paid %d, record payable %d + model fees %d", set.Paid, rec.Payable, fees)
	}
	if set.Refunded != rec.Refund {
		bad("attested refunded %d, record refund %d", set.Refunded, rec.Refund)
	}
}

// checkUsage checks billed usage against the usage the execution measured
// (each line prefixed with prefix). Per-task rounding up to a milli-unit
// may add up to one per task.
func checkUsage(bad func(string, ...any), prefix string, got MeteredUsage, usage []predicate.Usage) {
	var wall, cpu, mem, gpu float64
	n := int64(0)
	for _, u := range usage {
		wall += u.WallSeconds
		cpu += u.CPUSeconds
		mem += u.MemGBSeconds
		gpu += u.GPUSeconds
		n++
	}
	for _, c := range []struct {
		what    string
		got     int64
		seconds float64
	}{{"wall", got.WallMillis, wall}, {"cpu", got.CPUMillis, cpu}, {"memory", got.MemGBMillis, mem}, {"gpu", got.GPUMillis, gpu}} {
		want := int64(math.Ceil(c.seconds*1000 - 1e-6))
		if c.got < want-1 || c.got > want+n+1 {
			bad("%s%s usage billed %d ms, execution measured %.3f s", prefix, c.what, c.got, c.seconds)
		}
	}
}

// meter is settlement.Meter's per-component rule: ceil(qty × rate / 3.6e6).
func meter(qty, rate int64) (int64, bool) {
	if qty < 0 || rate < 0 {
		return 0, false
	}
	const millisPerHour = 3_600_000
	hi, lo := bits.Mul64(uint64(qty), uint64(rate))
	if hi >= millisPerHour {
		return 0, false
	}
	q, rem := bits.Div64(hi, lo, millisPerHour)
	if rem != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return 0, false
	}
	return int64(q), true
}

func subjectsHaveDigest(st *Statement, d string) bool {
	for _, s := range st.Subjects() {
		if s.Digest == d {
			return true
		}
	}
	return false
}

// artifactSubjects returns name → digest of the subjects other than the job.
func artifactSubjects(jobID string, st *Statement) map[string]string {
	out := map[string]string{}
	for _, s := range st.Subjects() {
		if s.Name == JobSubjectPrefix+jobID {
			continue
		}
		out[s.Name] = s.Digest
	}
	return out
}

// diffOutputs describes how got differs from want ("" when equal).
func diffOutputs(want, got map[string]string) string {
	var d []string
	for k, v := range want {
		switch g, ok := got[k]; {
		case !ok:
			d = append(d, fmt.Sprintf("%s missing", k))
		case g != v:
			d = append(d, fmt.Sprintf("%s is %s, want %s", k, g, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("unexpected %s", k))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "; ")
}

// VerifyOnline proves that the log l has only grown since the receipt was
// made: for each distinct checkpoint in the receipt, a consistency proof to
// l's current checkpoint, whose signature must verify with the receipt's
// (trusted) log key. Run Verify first.
func VerifyOnline(ctx context.Context, r *Receipt, l tlog.Log) ([]Problem, error) {
	pub, err := ParsePublicKeyPEM([]byte(r.Log.PublicKey))
	if err != nil {
		return nil, err
	}
	v, err := LoadVerifier(pub)
	if err != nil {
		return nil, err
	}
	info, err := l.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("provenance: log info: %w", err)
	}
	cur, err := parseCheckpoint(info.SignedCheckpoint)
	if err != nil {
		return []Problem{{Stage: "log", Check: "consistency", Message: fmt.Sprintf("current checkpoint: %v", err)}}, nil
	}
	var problems []Problem
	if !cur.Verify(v) {
		problems = append(problems, Problem{Stage: "log", Check: "consistency", Message: "the log's current checkpoint is not signed by the receipt's log key"})
		return problems, nil
	}
	done := map[uint64]bool{}
	for _, att := range r.Attestations {
		if att.Entry == nil || att.Entry.Verification == nil || att.Entry.Verification.InclusionProof == nil || att.Entry.Verification.InclusionProof.Checkpoint == nil {
			continue
		}
		sc, err := parseCheckpoint(*att.Entry.Verification.InclusionProof.Checkpoint)
		if err != nil || done[sc.Size] {
			continue
		}
		done[sc.Size] = true
		fail := func(format string, args ...any) {
			problems = append(problems, Problem{Stage: att.Stage, Check: "consistency", Message: fmt.Sprintf(format, args...)})
		}
		if sc.Size > cur.Size {
			fail("receipt checkpoint size %d is beyond the log's current size %d", sc.Size, cur.Size)
			continue
		}
		var hashes [][]byte
		if sc.Size < cur.Size && sc.Size > 0 {
			hs, err := l.ConsistencyProof(ctx, int64(sc.Size), int64(cur.Size))
			if err != nil {
				return nil, fmt.Errorf("provenance: consistency proof %d→%d: %w", sc.Size, cur.Size, err)
			}
			for _, h := range hs {
				b, err := hex.DecodeString(h)
				if err != nil {
					fail("consistency proof hash %q: %v", h, err)
					continue
				}
				hashes = append(hashes, b)
			}
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, sc.Size, cur.Size, hashes, sc.Hash, cur.Hash); err != nil {
			fail("tree of size %d (root %x) is not a prefix of the log's current tree of size %d: %v", sc.Size, sc.Hash, cur.Size, err)
		}
	}
	return problems, nil
}

// spotOutputs are the outputs of the spot-check run the job settled with
// (the provider it paid), as "task:path" -> "sha256:hex".
func spotOutputs(sc *predicate.SpotCheck) map[string]string {
	out := map[string]string{}
	for _, r := range sc.Runs {
		if r.Provider == sc.Paid && r.Role != predicate.SpotPrimary && r.OutputsDigest == sc.Majority {
			return runOutputs(r)
		}
	}
	return out
}

// billed is the price and the per-task usage a job settles on: the
// negotiated price and the execution's usage; after failovers the last
// replacement's price (its tasks are the execution's); after a reversed
// spot check the price and usage of the run the job settled with.
func billed(neg NegotiationPredicate, ex ExecutionPredicate, hasEx bool, ver VerificationPredicate, hasVer bool) (int64, []predicate.Usage) {
	price := neg.Price
	var usage []predicate.Usage
	if hasEx {
		if n := len(ex.Failovers); n > 0 {
			price = ex.Failovers[n-1].Price
		}
		for _, t := range ex.Tasks {
			usage = append(usage, t.Usage)
		}
	}
	if sc := ver.SpotCheck; hasVer && sc != nil && sc.Verdict == predicate.SpotReversed {
		for _, r := range sc.Runs {
			if r.Provider == sc.Paid && r.Role != predicate.SpotPrimary && r.OutputsDigest == sc.Majority {
				price, usage = r.Price, nil
				for _, u := range r.Usage {
					usage = append(usage, u)
				}
				break
			}
		}
	}
	return price, usage
}
