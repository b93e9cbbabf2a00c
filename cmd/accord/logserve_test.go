package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	_ "github.com/accordmesh/accord/provenance/tlog/rekorv1"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
	"github.com/accordmesh/accord/provenance/witness"
)

// runHome runs the built binary with --home home and returns the last
// stdout line (the --json result).
func runHome(t *testing.T, home string, args ...string) string {
	t.Helper()
	c := exec.Command(bin, append([]string{"--home", home, "--json"}, args...)...)
	out, err := c.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("accord %v: %v\n%s\n%s", args, err, out, ee.Stderr)
		}
		t.Fatalf("accord %v: %v", args, err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return lines[len(lines)-1]
}

// startLogServe starts `accord log serve` and returns its URL; the process
// is stopped by its PID (SIGTERM, then SIGKILL) when the test ends.
func startLogServe(t *testing.T, home string, args ...string) string {
	t.Helper()
	c := exec.Command(bin, append([]string{"--home", home, "--json", "log", "serve", "--addr", "127.0.0.1:0"}, args...)...)
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	t.Cleanup(func() {
		_ = c.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("log serve exited with %v after SIGTERM\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			_ = c.Process.Kill()
			<-exited
			t.Errorf("log serve ignored SIGTERM")
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("log serve printed nothing: %v\n%s", err, stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	var res struct {
		Listen, URL, Status string
		Witnesses           []string
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil || res.Status != "serving" || !strings.Contains(res.URL, "://127.0.0.1:") {
		t.Fatalf("log serve --json: %q (%v)", line, err)
	}
	return res.URL
}

// TestLogServeWithWitness: `accord log serve` with a witness (the
// provenance/witness server, in-process on loopback) logs a token holder's
// envelope, refuses one without a token or with a removed token, and
// serves a checkpoint covering the entry with the witness's cosignature,
// which witness.VerifyCosignatures counts.
func TestLogServeWithWitness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()

	// Create the log first, so the witness can be configured with its
	// origin and key, as an operator would from `accord log serve`'s output.
	l, err := embedded.Open(ctx, filepath.Join(home, "tlog"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := l.Info(ctx)
	pub, _ := l.PublicKey(ctx)
	origin, _, _ := strings.Cut(info.SignedCheckpoint, "\n")
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s := newWitnessSigner(t, "w1.test/witness")
	w, err := witness.New(s, filepath.Join(t.TempDir(), "witness"), witness.Log{Origin: origin, Key: pub})
	if err != nil {
		t.Fatal(err)
	}
	wsrv := httptest.NewServer(w.Handler())
	defer func() { wsrv.Close(); w.Close() }()

	var added struct{ Writer, Token string }
	if err := json.Unmarshal([]byte(runHome(t, home, "log", "token", "add", "worker-b")), &added); err != nil || added.Token == "" {
		t.Fatalf("token add: %+v %v", added, err)
	}
	if list := runHome(t, home, "log", "token", "list"); !strings.Contains(list, `"worker-b"`) || strings.Contains(list, added.Token) {
		t.Fatalf("token list %s: want the writer, never its token", list)
	}
	if b, _ := os.ReadFile(filepath.Join(home, "log-writers.json")); strings.Contains(string(b), added.Token) {
		t.Fatal("the writers file holds the token in clear")
	}

	url := startLogServe(t, home, "--witness", wsrv.URL, "--witness-every", "1s")
	writer, err := tlog.Open(ctx, tlog.Config{Kind: tlog.KindRekor, URL: url, Insecure: true, Token: added.Token})
	if err != nil {
		t.Fatal(err)
	}
	f := tlogtest.NewFixture(t, nil)
	e, err := writer.Upload(ctx, f.Envelope, f.Key.PublicPEM())
	if err != nil {
		t.Fatalf("upload with token: %v", err)
	}
	tlogtest.VerifyEntry(t, ctx, writer, e, f.Envelope)
	anon, _ := tlog.Open(ctx, tlog.Config{Kind: tlog.KindRekor, URL: url, Insecure: true})
	g := tlogtest.NewFixture(t, nil)
	if _, err := anon.Upload(ctx, g.Envelope, g.Key.PublicPEM()); !errors.Is(err, tlog.ErrUnauthorized) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("upload without token: %v", err)
	}

	note := waitCosigned(t, url, *e.LogIndex+1)
	n, err := witness.ParseNote(note)
	if err != nil {
		t.Fatal(err)
	}
	lv, err := witness.LogVerifier(pub)
	if err != nil || !n.Verified(lv) {
		t.Fatalf("log signature on the cosigned checkpoint: %v", err)
	}
	v, err := witness.NewCosignatureVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if tl := witness.VerifyCosignatures(n, []*witness.CosignatureVerifier{v}, lv.KeyHash()); len(tl.Valid) != 1 || tl.Valid[0].Witness != "w1.test/witness" {
		t.Fatalf("cosignatures: %+v", tl)
	}

	runHome(t, home, "log", "token", "remove", "worker-b")
	if _, err := writer.Upload(ctx, g.Envelope, g.Key.PublicPEM()); !errors.Is(err, tlog.ErrUnauthorized) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("upload with a removed token: %v", err)
	}
}

// waitCosigned polls the cosigned checkpoint until it covers size entries.
func waitCosigned(t *testing.T, url string, size int64) []byte {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/api/v1/log/checkpoint/cosigned")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			n, err := witness.ParseNote(body)
			if err != nil {
				t.Fatalf("cosigned checkpoint: %v\n%s", err, body)
			}
			if cp, err := witness.ParseCheckpoint(n.Text); err == nil && int64(cp.Size) >= size {
				return body
			}
		} else if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("cosigned checkpoint: HTTP %d: %s", resp.StatusCode, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no cosigned checkpoint of size %d within 60s", size)
	return nil
}

func newWitnessSigner(t *testing.T, name string) *witness.Signer {
	t.Helper()
	skey, err := witness.GenerateKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := witness.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLogServeTLS: with --tls-cert and --tls-key the log answers HTTPS
// only, reads stay open and uploads still need a token.
func TestLogServeTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "log.crt"), filepath.Join(dir, "log.key")
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, keyPEM, 0o600)
	url := startLogServe(t, filepath.Join(dir, "home"), "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("url %s", url)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := c.Get(url + "/api/v1/log")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/log over TLS: %d", resp.StatusCode)
	}
	resp, err = c.Post(url+"/api/v1/log/entries", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST without token over TLS: %d", resp.StatusCode)
	}
	// Go's TLS server answers a plain-HTTP request with 400.
	if resp, err := http.Get("http://" + strings.TrimPrefix(url, "https://") + "/api/v1/log"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the TLS log answered plain HTTP")
		}
	}
}

// selfSigned makes a certificate for 127.0.0.1 and its key, both PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "accord-log-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
