package specs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// CanonicalJSON is the contract form of s: its JSON (prose and source
// positions are not part of Spec's JSON) re-encoded with every object's keys
// sorted and no insignificant space. Load has already normalised units and
// put set-like lists in order, so equal terms give equal bytes.
func CanonicalJSON(s *Spec) ([]byte, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("specs: encode contract: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("specs: canonicalise contract: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // encoding/json sorts map keys
		return nil, fmt.Errorf("specs: canonicalise contract: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ContractDigest is "sha256:<hex>" of CanonicalJSON(s).
func ContractDigest(s *Spec) (string, error) {
	b, err := CanonicalJSON(s)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:]), nil
}
