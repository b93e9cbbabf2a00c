package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogToken: the token file wins over the token, holds one line, and
// must be a regular file.
func TestLogToken(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name string
		o    Options
		want string
		err  string
	}{
		{"env only", Options{LogToken: "acclog_env"}, "acclog_env", ""},
		{"file wins", Options{LogToken: "acclog_env", LogTokenFile: file("t", "acclog_file\n")}, "acclog_file", ""},
		{"empty file", Options{LogTokenFile: file("e", "\n")}, "", "want one line"},
		{"two lines", Options{LogTokenFile: file("two", "a\nb\n")}, "", "want one line"},
		{"missing", Options{LogTokenFile: filepath.Join(dir, "nope")}, "", "no such file"},
		{"device", Options{LogTokenFile: "/dev/zero"}, "", "not a regular file"},
	} {
		got, err := logToken(c.o)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %q, %v; want %q, error ~%q", c.name, got, err, c.want, c.err)
		}
	}
}
