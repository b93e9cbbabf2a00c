package activities

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// A metric test's detail echoes part of the tenant's output; it stays
// small enough for an attestation however large the output.
func TestTestDetailBounded(t *testing.T) {
	dir := t.TempDir()
	big := `{"accuracy": "` + strings.Repeat("é", 400_000) + `"}`
	p := filepath.Join(dir, "m.json")
	if err := os.WriteFile(p, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := readMetric(p, "accuracy")
	if err == nil {
		t.Fatal("a string metric was read as a number")
	}
	d := truncate("metric accuracy in m.json: "+err.Error(), MaxTestDetail/4)
	if len(d) > MaxTestDetail/4 || !utf8.ValidString(d) || !strings.HasSuffix(d, "…") {
		t.Errorf("detail of %d bytes (valid UTF-8 %v)", len(d), utf8.ValidString(d))
	}
	if got := truncate("short", 10); got != "short" {
		t.Errorf("truncate(short) = %q", got)
	}
}
