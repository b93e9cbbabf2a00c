package provenance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accordmesh/accord/internal/atomicfile"
)

// Key algorithms accepted by GenerateKey.
const (
	AlgECDSAP256 = "ecdsa-p256"
	AlgEd25519   = "ed25519"
)

// Key is a private signing key. Its identity is its fingerprint.
type Key struct {
	priv   crypto.Signer
	signer signature.Signer
	id     string
	alg    string
}

// GenerateKey creates a new key; alg is AlgECDSAP256 (the default when
// empty) or AlgEd25519.
func GenerateKey(alg string) (*Key, error) {
	var priv crypto.Signer
	switch alg {
	case "", AlgECDSAP256, "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("provenance: generate ecdsa key: %w", err)
		}
		priv = k
	case AlgEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("provenance: generate ed25519 key: %w", err)
		}
		priv = k
	default:
		return nil, fmt.Errorf("%w: %q (want %s or %s)", ErrKeyAlgorithm, alg, AlgECDSAP256, AlgEd25519)
	}
	return NewKey(priv)
}

// NewKey wraps an ECDSA P-256 or ed25519 private key.
func NewKey(priv crypto.Signer) (*Key, error) {
	var (
		s   signature.Signer
		alg string
		err error
	)
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ecdsa curve %s (want P-256)", ErrKeyAlgorithm, k.Curve.Params().Name)
		}
		s, err = signature.LoadECDSASigner(k, crypto.SHA256)
		alg = AlgECDSAP256
	case ed25519.PrivateKey:
		s, err = signature.LoadED25519Signer(k)
		alg = AlgEd25519
	default:
		return nil, fmt.Errorf("%w: %T", ErrKeyAlgorithm, priv)
	}
	if err != nil {
		return nil, fmt.Errorf("provenance: load signer: %w", err)
	}
	id, err := Fingerprint(priv.Public())
	if err != nil {
		return nil, err
	}
	return &Key{priv: priv, signer: s, id: id, alg: alg}, nil
}

// ID is the key's fingerprint, "sha256:<hex of the DER public key>".
func (k *Key) ID() string { return k.id }

// Algorithm is AlgECDSAP256 or AlgEd25519.
func (k *Key) Algorithm() string { return k.alg }

// Public returns the public key.
func (k *Key) Public() crypto.PublicKey { return k.priv.Public() }

// Signer returns the key as a sigstore signer (used for log checkpoints).
func (k *Key) Signer() signature.Signer { return k.signer }

// PublicPEM returns the PKIX public key in PEM.
func (k *Key) PublicPEM() []byte {
	b, err := MarshalPublicKeyPEM(k.priv.Public())
	if err != nil {
		panic(err) // the key types NewKey accepts always marshal
	}
	return b
}

// PrivatePEM returns the PKCS#8 private key in PEM.
func (k *Key) PrivatePEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("provenance: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Sign signs msg (hashing it with SHA-256 for ECDSA).
func (k *Key) Sign(msg []byte) ([]byte, error) {
	sig, err := k.signer.SignMessage(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("provenance: sign: %w", err)
	}
	return sig, nil
}

// ParsePrivateKeyPEM reads a PKCS#8, SEC1 (EC) private key PEM.
func ParsePrivateKeyPEM(b []byte) (*Key, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKey)
	}
	var (
		priv any
		err  error
	)
	switch blk.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not a private key", ErrBadKey, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	s, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T cannot sign", ErrBadKey, priv)
	}
	return NewKey(s)
}

// LoadKey reads a private key PEM file.
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("provenance: read key: %w", err)
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateKey loads the private key at path, or generates one with alg
// and writes it (0600) with its public half at path+".pub". Idempotent: a
// second call returns the same key.
func LoadOrCreateKey(path, alg string) (*Key, error) {
	if _, err := os.Stat(path); err == nil {
		return LoadKey(path)
	}
	k, err := GenerateKey(alg)
	if err != nil {
		return nil, err
	}
	if err := k.WriteFiles(path); err != nil {
		return nil, err
	}
	return k, nil
}

// WriteFiles writes the private key PEM to path (0600, atomically, never
// overwriting an existing file) and the public key PEM to path+".pub".
func (k *Key) WriteFiles(path string) error {
	priv, err := k.PrivatePEM()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("provenance: key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("provenance: write key: %w", err)
	}
	if _, err := f.Write(priv); err != nil {
		f.Close()
		return fmt.Errorf("provenance: write key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("provenance: write key: %w", err)
	}
	if err := writeFileAtomic(path+".pub", k.PublicPEM(), 0o644); err != nil {
		return err
	}
	return nil
}

// MarshalPublicKeyPEM encodes a public key as PKIX PEM.
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKeyPEM decodes a PKIX public key PEM (ECDSA P-256 or ed25519).
func ParsePublicKeyPEM(b []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKey)
	}
	if blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: PEM block %q is not a public key", ErrBadKey, blk.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ecdsa curve %s (want P-256)", ErrKeyAlgorithm, p.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: %T", ErrKeyAlgorithm, pub)
	}
	return pub, nil
}

// Fingerprint is a public key's identity: "sha256:<hex of sha256(DER PKIX)>".
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// LoadVerifier returns a sigstore verifier for an ECDSA P-256 or ed25519 key.
func LoadVerifier(pub crypto.PublicKey) (signature.Verifier, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return signature.LoadECDSAVerifier(p, crypto.SHA256)
	case ed25519.PublicKey:
		return signature.LoadED25519Verifier(p)
	default:
		return nil, fmt.Errorf("%w: %T", ErrKeyAlgorithm, pub)
	}
}

// dsseSigner adapts a Key to go-securesystemslib's dsse.SignerVerifier.
type dsseSigner struct{ k *Key }

func (s dsseSigner) Sign(_ context.Context, data []byte) ([]byte, error) { return s.k.Sign(data) }
func (s dsseSigner) KeyID() (string, error)                              { return s.k.id, nil }
func (s dsseSigner) Public() crypto.PublicKey                            { return s.k.Public() }
func (s dsseSigner) Verify(ctx context.Context, data, sig []byte) error {
	return dsseVerifier{pub: s.k.Public(), id: s.k.id}.Verify(ctx, data, sig)
}

// dsseVerifier adapts a public key to dsse.Verifier.
type dsseVerifier struct {
	pub crypto.PublicKey
	id  string
	v   signature.Verifier
}

func newDSSEVerifier(pub crypto.PublicKey) (dsseVerifier, error) {
	id, err := Fingerprint(pub)
	if err != nil {
		return dsseVerifier{}, err
	}
	v, err := LoadVerifier(pub)
	if err != nil {
		return dsseVerifier{}, err
	}
	return dsseVerifier{pub: pub, id: id, v: v}, nil
}

func (d dsseVerifier) Verify(_ context.Context, data, sig []byte) error {
	v := d.v
	if v == nil {
		var err error
		if v, err = LoadVerifier(d.pub); err != nil {
			return err
		}
	}
	return v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(data))
}
func (d dsseVerifier) KeyID() (string, error)   { return d.id, nil }
func (d dsseVerifier) Public() crypto.PublicKey { return d.pub }

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("provenance: mkdir: %w", err)
	}
	if err := atomicfile.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("provenance: write %s: %w", path, err)
	}
	return nil
}
