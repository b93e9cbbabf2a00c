package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Signature algorithm bytes of C2SP signed-note verifier keys.
const (
	algEd25519       = 0x01
	algCosignatureV1 = 0x04
)

// cosignHeader is the domain separation line of tlog-cosignature v1.
const cosignHeader = "cosignature/v1\n"

// Signer makes tlog-cosignature v1 cosignatures with an Ed25519 key.
type Signer struct {
	name  string
	priv  ed25519.PrivateKey
	keyID uint32
	now   func() time.Time
}

// GenerateKey returns a new witness key named name as a note signer key
// line ("PRIVATE+KEY+name+hash+base64(0x01 || seed)", the x/mod/sumdb/note
// encoding), for NewSigner.
func GenerateKey(random io.Reader, name string) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("%w: witness name %q (no spaces or '+')", ErrMalformed, name)
	}
	if random == nil {
		random = rand.Reader
	}
	skey, _, err := note.GenerateKey(random, name)
	if err != nil {
		return "", fmt.Errorf("witness: generate key: %w", err)
	}
	return skey, nil
}

// NewSigner parses a note signer key line (see GenerateKey).
func NewSigner(skey string) (*Signer, error) {
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" || !validName(parts[2]) {
		return nil, fmt.Errorf("%w: witness key is not a note signer key (PRIVATE+KEY+name+hash+key)", ErrMalformed)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algEd25519 {
		return nil, fmt.Errorf("%w: witness key is not an Ed25519 note signer key", ErrMalformed)
	}
	priv := ed25519.NewKeyFromSeed(raw[1:])
	return &Signer{name: parts[2], priv: priv, keyID: KeyID(parts[2], priv.Public().(ed25519.PublicKey)), now: time.Now}, nil
}

// KeyID is the tlog-cosignature v1 key ID:
// SHA-256(name || "\n" || 0x04 || public key)[:4].
func KeyID(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{algCosignatureV1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// Name is the witness's key name.
func (s *Signer) Name() string { return s.name }

// VerifierKey is the witness's public key as a C2SP vkey line with
// signature type 0x04: "name+<key ID hex>+base64(0x04 || public key)".
func (s *Signer) VerifierKey() string {
	pub := s.priv.Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s+%08x+%s", s.name, s.keyID, base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, pub...)))
}

// Cosign signs a checkpoint note text at the current time.
func (s *Signer) Cosign(text string) Signature {
	t := uint64(s.now().Unix())
	sig := binary.BigEndian.AppendUint64(nil, t)
	sig = append(sig, ed25519.Sign(s.priv, cosignedMessage(t, text))...)
	return Signature{Name: s.name, Hash: s.keyID, Sig: sig}
}

func cosignedMessage(t uint64, text string) []byte {
	return []byte(cosignHeader + "time " + strconv.FormatUint(t, 10) + "\n" + text)
}

// CosignatureVerifier checks cosignatures of one witness. It implements
// x/mod/sumdb/note.Verifier.
type CosignatureVerifier struct {
	name  string
	pub   ed25519.PublicKey
	keyID uint32
}

var _ note.Verifier = (*CosignatureVerifier)(nil)

// NewCosignatureVerifier parses a witness's vkey line: signature type 0x04
// (as VerifierKey prints) or a plain Ed25519 note key (0x01), whose
// cosignature key ID is then computed as for 0x04.
func NewCosignatureVerifier(vkey string) (*CosignatureVerifier, error) {
	parts := strings.SplitN(strings.TrimSpace(vkey), "+", 3)
	if len(parts) != 3 || !validName(parts[0]) || len(parts[1]) != 8 {
		return nil, fmt.Errorf("%w: witness key %q is not name+hash+key", ErrMalformed, clip(vkey))
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || (raw[0] != algCosignatureV1 && raw[0] != algEd25519) {
		return nil, fmt.Errorf("%w: witness key %q is not an Ed25519 key", ErrMalformed, clip(vkey))
	}
	pub := ed25519.PublicKey(raw[1:])
	v := &CosignatureVerifier{name: parts[0], pub: pub, keyID: KeyID(parts[0], pub)}
	if raw[0] == algCosignatureV1 {
		if h, err := strconv.ParseUint(parts[1], 16, 32); err != nil || uint32(h) != v.keyID {
			return nil, fmt.Errorf("%w: witness key %q: key ID %s does not match the key", ErrMalformed, clip(vkey), parts[1])
		}
	}
	return v, nil
}

// Name is the witness's key name.
func (v *CosignatureVerifier) Name() string { return v.name }

// KeyHash is the cosignature key ID.
func (v *CosignatureVerifier) KeyHash() uint32 { return v.keyID }

// Verify checks a cosignature (timestamp || Ed25519 signature) over msg,
// the checkpoint note text. Timestamps above 2^63-1 are refused.
func (v *CosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > 1<<63-1 {
		return false
	}
	return ed25519.Verify(v.pub, cosignedMessage(t, string(msg)), sig[8:])
}

// Cosignature is one valid cosignature.
type Cosignature struct {
	Witness string    `json:"witness"`
	KeyID   string    `json:"key_id"`
	Time    time.Time `json:"time"`
}

// Tally is the outcome of VerifyCosignatures.
type Tally struct {
	// Valid holds one cosignature per trusted witness whose signature verifies.
	Valid []Cosignature `json:"valid"`
	// Rejected describes signature lines that were not counted (a trusted
	// witness's line that does not verify, or an untrusted key), excluding
	// the log's own signature when logKeyHash matches.
	Rejected []string `json:"rejected,omitempty"`
}

// Witnesses lists the names of the witnesses with a valid cosignature.
func (t Tally) Witnesses() []string {
	out := make([]string, len(t.Valid))
	for i, c := range t.Valid {
		out[i] = c.Witness
	}
	return out
}

// VerifyCosignatures counts the valid cosignatures on a checkpoint note
// from the trusted witnesses; each witness counts once. Lines with
// logKeyHash are the log's own signatures and are skipped.
func VerifyCosignatures(n *Note, trusted []*CosignatureVerifier, logKeyHash uint32) Tally {
	var t Tally
	counted := map[uint32]bool{}
	for _, s := range n.Sigs {
		if s.Hash == logKeyHash {
			continue
		}
		v := findVerifier(trusted, s)
		switch {
		case v == nil:
			t.Rejected = append(t.Rejected, fmt.Sprintf("%s (key %08x is not a trusted witness key)", s.Name, s.Hash))
		case !v.Verify([]byte(n.Text), s.Sig):
			t.Rejected = append(t.Rejected, fmt.Sprintf("%s (cosignature does not verify)", s.Name))
		case !counted[v.keyID]:
			counted[v.keyID] = true
			ts := binary.BigEndian.Uint64(s.Sig)
			t.Valid = append(t.Valid, Cosignature{Witness: v.name, KeyID: fmt.Sprintf("%08x", v.keyID), Time: time.Unix(int64(ts), 0).UTC()})
		}
	}
	sort.Slice(t.Valid, func(i, j int) bool { return t.Valid[i].Witness < t.Valid[j].Witness })
	return t
}

func findVerifier(vs []*CosignatureVerifier, s Signature) *CosignatureVerifier {
	for _, v := range vs {
		if v.keyID == s.Hash && v.name == s.Name {
			return v
		}
	}
	return nil
}
