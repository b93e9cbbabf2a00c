package witness

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Limits on what a witness or an auditor reads.
const (
	// MaxNoteSize bounds a signed note (checkpoint with its signatures).
	MaxNoteSize = 32 << 10
	// MaxSignatures bounds the signature lines of one note.
	MaxSignatures = 100
	// MaxProofHashes is tlog-witness's bound on consistency proof lines.
	MaxProofHashes = 63
)

// Note is a parsed signed note. Signatures are not verified.
type Note struct {
	// Text is the note body, ending in a newline (what signatures cover).
	Text string
	Sigs []Signature
}

// Signature is one signature line.
type Signature struct {
	Name string
	Hash uint32
	// Sig is the signature bytes after the 4-byte key hash.
	Sig []byte
}

// Line formats s as a note signature line, newline included.
func (s Signature) Line() string {
	b := binary.BigEndian.AppendUint32(nil, s.Hash)
	return "— " + s.Name + " " + base64.StdEncoding.EncodeToString(append(b, s.Sig...)) + "\n"
}

// ParseNote splits a signed note into its text and signature lines.
func ParseNote(b []byte) (*Note, error) {
	if len(b) > MaxNoteSize {
		return nil, fmt.Errorf("%w: note of %d bytes, at most %d", ErrMalformed, len(b), MaxNoteSize)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: note is not UTF-8", ErrMalformed)
	}
	split := bytes.LastIndex(b, []byte("\n\n"))
	if split < 0 {
		return nil, fmt.Errorf("%w: note has no blank line before its signatures", ErrMalformed)
	}
	text, sigs := b[:split+1], b[split+2:]
	if len(sigs) == 0 || sigs[len(sigs)-1] != '\n' {
		return nil, fmt.Errorf("%w: note has no signature lines", ErrMalformed)
	}
	n := &Note{Text: string(text)}
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		if len(n.Sigs) == MaxSignatures {
			return nil, fmt.Errorf("%w: more than %d signatures", ErrMalformed, MaxSignatures)
		}
		s, err := parseSigLine(line)
		if err != nil {
			return nil, err
		}
		n.Sigs = append(n.Sigs, s)
	}
	return n, nil
}

// ParseSignatureLines parses a witness's response: signature lines only.
func ParseSignatureLines(b []byte) ([]Signature, error) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: no signature lines", ErrMalformed)
	}
	var out []Signature
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if len(out) == MaxSignatures {
			return nil, fmt.Errorf("%w: more than %d signatures", ErrMalformed, MaxSignatures)
		}
		s, err := parseSigLine(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func parseSigLine(line string) (Signature, error) {
	rest, ok := strings.CutPrefix(line, "— ")
	if !ok {
		return Signature{}, fmt.Errorf("%w: signature line %q does not start with \"— \"", ErrMalformed, clip(line))
	}
	name, b64, ok := strings.Cut(rest, " ")
	if !ok || !validName(name) {
		return Signature{}, fmt.Errorf("%w: signature line %q: bad key name", ErrMalformed, clip(line))
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(raw) < 5 {
		return Signature{}, fmt.Errorf("%w: signature line %q: bad signature", ErrMalformed, clip(line))
	}
	return Signature{Name: name, Hash: binary.BigEndian.Uint32(raw), Sig: raw[4:]}, nil
}

func validName(s string) bool {
	return s != "" && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsSpace) < 0 && !strings.Contains(s, "+")
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Checkpoint is the first three lines of a checkpoint note.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   []byte
}

// ParseCheckpoint reads the checkpoint lines of a note's text (extension
// lines are allowed and ignored).
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint has fewer than three lines", ErrMalformed)
	}
	if lines[0] == "" {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint has an empty origin", ErrMalformed)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || (lines[1] != "0" && lines[1][0] == '0') {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint size %q", ErrMalformed, clip(lines[1]))
	}
	hash, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(hash) != sha256.Size {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint root hash %q", ErrMalformed, clip(lines[2]))
	}
	return Checkpoint{Origin: lines[0], Size: size, Hash: hash}, nil
}

// Verified reports whether some signature of n verifies with v. A verifier
// whose Name is "" matches a signature of any name with its key hash (Rekor
// signs with its hostname, which is only part of the origin).
func (n *Note) Verified(v note.Verifier) bool {
	for _, s := range n.Sigs {
		if s.Hash == v.KeyHash() && (v.Name() == "" || v.Name() == s.Name) && v.Verify([]byte(n.Text), s.Sig) {
			return true
		}
	}
	return false
}

// LogVerifier returns the verifier of a log's checkpoint signatures from a
// PKIX public key PEM (Rekor v1 or Accord's log: ECDSA or Ed25519) or a
// note verifier key line ("name+hash+base64", C2SP signed-note Ed25519).
func LogVerifier(key []byte) (note.Verifier, error) {
	if blk, _ := pem.Decode(key); blk != nil {
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: log public key: %v", ErrMalformed, err)
		}
		return PKIXVerifier(pub)
	}
	v, err := fnote.NewVerifier(strings.TrimSpace(string(key)))
	if err != nil {
		return nil, fmt.Errorf("%w: log key is neither a PEM public key nor a note verifier key: %v", ErrMalformed, err)
	}
	return v, nil
}

// PKIXVerifier verifies Rekor-style note signatures by pub (ECDSA or
// Ed25519): key hash SHA-256(DER)[:4], ECDSA over SHA-256 of the text.
func PKIXVerifier(pub crypto.PublicKey) (note.Verifier, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: log public key: %v", ErrMalformed, err)
	}
	sum := sha256.Sum256(der)
	v := &funcVerifier{hash: binary.BigEndian.Uint32(sum[:])}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		v.verify = func(msg, sig []byte) bool {
			d := sha256.Sum256(msg)
			return ecdsa.VerifyASN1(k, d[:], sig)
		}
	case ed25519.PublicKey:
		v.verify = func(msg, sig []byte) bool { return ed25519.Verify(k, msg, sig) }
	default:
		return nil, fmt.Errorf("%w: log key type %T (want ECDSA or Ed25519)", ErrMalformed, pub)
	}
	return v, nil
}

type funcVerifier struct {
	name   string
	hash   uint32
	verify func(msg, sig []byte) bool
}

func (v *funcVerifier) Name() string                { return v.name }
func (v *funcVerifier) KeyHash() uint32             { return v.hash }
func (v *funcVerifier) Verify(msg, sig []byte) bool { return v.verify(msg, sig) }

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }
