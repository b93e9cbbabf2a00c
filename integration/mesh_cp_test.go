package integration

// The parties of the mesh as real processes (docs/deploy.md): the control
// plane (Temporal on PostgreSQL, `accord worker`, `accord serve`), the log
// (`accord log serve`), a witness (`accord witness serve`) and provider
// agents (`accord provider serve`), each in its own home.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers"
)

// proc is one party's long-running process, its output in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startProc starts cmd with its output in logPath; the process gets
// SIGTERM (SIGKILL after 30 s) when the test ends, and its log is shown
// when the test failed.
func startProc(t *testing.T, name, logPath string, cmd *exec.Cmd) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			p.showLog(t)
		}
	})
	return p
}

// stop sends SIGTERM and waits, with SIGKILL after 30 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) showLog(t *testing.T) {
	b, _ := os.ReadFile(p.log)
	if len(b) > 16<<10 {
		b = b[len(b)-16<<10:]
	}
	t.Logf("%s log (tail):\n%s", p.name, b)
}

// jsonLine waits for the first line of the process's output that is a
// JSON object with key (what --json prints once the party serves).
func (p *proc) jsonLine(t *testing.T, key string, timeout time.Duration) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, timeout, p.name+" serving", func() bool {
		if p.exited() {
			p.showLog(t)
			t.Fatalf("%s exited: %v", p.name, p.cmd.ProcessState)
		}
		f, err := os.Open(p.log)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			var m map[string]any
			if bytes.HasPrefix(line, []byte("{")) && json.Unmarshal(line, &m) == nil && m[key] != nil {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// cli runs the accord binary (a short command, bounded to 2 minutes) and
// returns its stdout; it fails the test on a non-zero exit.
func cli(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, code, stderr := cliExit(t, bin, args...)
	if code != 0 {
		t.Fatalf("accord %s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr)
	}
	return out
}

// cliExit runs the accord binary and returns stdout, the exit code and
// stderr.
func cliExit(t *testing.T, bin string, args ...string) (string, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("accord %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), code, stderr.String()
}

// lastJSON decodes the last line of a --json command's stdout.
func lastJSON(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(lastLine(out)), v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
}

// meshControl is the control plane in the root namespace, bound to the
// bridge address, with the log and the witness beside it.
type meshControl struct {
	t         *testing.T
	net       *meshNet
	bin       string
	home      string // the control plane's (worker and API)
	tc        *temporalCluster
	ledgerDSN string
	apiURL    string
	logURL    string
	witURL    string
	logPub    string // the log's public key (PEM file)
	witKey    string // the witness's verifier key (vkey file)
	opPub     string // the control plane's key (PEM file)
	client    client.Client
	reg       *agents.Registry
	image     string // the trainer image's digest in the artifact store
	worker    *proc
	agents    map[string]*meshAgent
}

// meshAgent is one provider's agent in its namespace.
type meshAgent struct {
	name, home, tokenFile, pub string
	proc                       *proc
	starts                     int
}

// startMeshControl starts the control plane, the log and the witness,
// creates tenants (each funded with fund[tenant] in minor units) and puts
// the trainer image in the artifact store, granted to every tenant.
func startMeshControl(t *testing.T, n *meshNet, image string, fund map[string]int64) *meshControl {
	t.Helper()
	ip := n.HostIP()
	cp := &meshControl{t: t, net: n, bin: accordBinary(t), agents: map[string]*meshAgent{}}
	t.Setenv("ACCORD_TEMPORAL_BIND", ip) // temporal.sh binds the cluster to the bridge address
	cp.tc = startTemporal(t)
	if !strings.HasPrefix(cp.tc.addr, ip+":") {
		t.Fatalf("Temporal frontend at %s, want %s:PORT", cp.tc.addr, ip)
	}
	cp.ledgerDSN = cp.tc.createDB("accord_mesh_ledger")
	cp.home = newHome(t)
	cp.startLogAndWitness()
	cli(t, cp.bin, "--home", cp.home, "keys", "trust", cp.logPub, "--scope", "log", "--name", "mesh-log")

	ctx := context.Background()
	l, err := settlement.Open(ctx, cp.ledgerDSN)
	if err != nil {
		t.Fatal(err)
	}
	store := artifacts.Local{Dir: artifacts.DefaultDir(cp.home)}
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	cp.image, _, err = store.PutReader(ctx, f, 1<<30)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for tenant, amount := range fund {
		putTenant(t, cp.home, tenant)
		if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: tenant, Currency: "USD", Amount: amount, Key: "test-fund-" + tenant}); err != nil {
			t.Fatal(err)
		}
		if err := store.Grant(tenant, cp.image); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()

	tokFile := filepath.Join(cp.home, "log.token")
	cp.worker = startProc(t, "accord worker", filepath.Join(cp.home, "worker.log"), exec.Command(cp.bin, "--home", cp.home, "worker",
		"--temporal-address", cp.tc.addr, "--ledger-dsn", cp.ledgerDSN, "--metrics-addr", "",
		"--rekor-url", cp.logURL, "--rekor-token-file", tokFile, "--insecure", "--json"))
	cp.worker.jsonLine(t, "queues", 2*time.Minute)
	apiAddr := net.JoinHostPort(ip, strconv.Itoa(freePortOn(t, ip)))
	api := startProc(t, "accord serve", filepath.Join(cp.home, "serve.log"), exec.Command(cp.bin, "--home", cp.home, "serve",
		"--listen", apiAddr, "--temporal-address", cp.tc.addr, "--rekor-url", cp.logURL, "--insecure", "--rate-limit", "0", "--json"))
	api.jsonLine(t, "listen", 2*time.Minute)
	cp.apiURL = "http://" + apiAddr

	cp.client, err = workers.Dial(ctx, workers.ClientOptions{Address: cp.tc.addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.client.Close)
	cp.reg = agents.Open(cp.home)
	key, err := provenance.LoadKey(filepath.Join(cp.home, "keys", "worker.key"))
	if err != nil {
		t.Fatalf("the control plane's key: %v", err)
	}
	cp.opPub = filepath.Join(cp.home, "operator.pub")
	if err := os.WriteFile(cp.opPub, key.PublicPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return cp
}

// startLogAndWitness starts `accord log serve` (its own home, a writer
// token for the control plane) and `accord witness serve` for it, both on
// the bridge address; the log takes its checkpoint to the witness every
// second.
func (cp *meshControl) startLogAndWitness() {
	t, ip := cp.t, cp.net.HostIP()
	logHome, witDir := t.TempDir(), t.TempDir()
	var tok struct{ Token string }
	lastJSON(t, cli(t, cp.bin, "--home", logHome, "log", "token", "add", "control-plane", "--json"), &tok)
	if err := os.WriteFile(filepath.Join(cp.home, "log.token"), []byte(tok.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var wk struct {
		VerifierKey string `json:"verifier_key"`
	}
	witKey := filepath.Join(witDir, "witness.key")
	lastJSON(t, cli(t, cp.bin, "witness", "key", "--key", witKey, "--name", "witness.mesh.test/w1", "--json"), &wk)
	cp.witKey = filepath.Join(witDir, "witness.vkey")
	if err := os.WriteFile(cp.witKey, []byte(wk.VerifierKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	logAddr := net.JoinHostPort(ip, strconv.Itoa(freePortOn(t, ip)))
	witAddr := net.JoinHostPort(ip, strconv.Itoa(freePortOn(t, ip)))
	cp.logURL, cp.witURL = "http://"+logAddr, "http://"+witAddr
	lg := startProc(t, "accord log serve", filepath.Join(logHome, "log.log"), exec.Command(cp.bin, "--home", logHome, "log", "serve",
		"--addr", logAddr, "--witness", cp.witURL, "--witness-every", "1s", "--json"))
	info := lg.jsonLine(t, "origin", 2*time.Minute)
	origin, _ := info["origin"].(string)
	pub, _ := info["public_key"].(string)
	if origin == "" || pub == "" {
		t.Fatalf("log serve printed %v", info)
	}
	cp.logPub = filepath.Join(logHome, "log.pub")
	if err := os.WriteFile(cp.logPub, []byte(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	w := startProc(t, "accord witness serve", filepath.Join(witDir, "witness.log"), exec.Command(cp.bin, "witness", "serve",
		"--addr", witAddr, "--key", witKey, "--state", filepath.Join(witDir, "state"), "--log", origin+"="+cp.logPub, "--json"))
	w.jsonLine(t, "verifier_key", time.Minute)
	waitListening(t, logAddr, time.Minute)
}

// startAgent starts provider name's agent in its namespace with its own
// home (so its own containerd and key), a provider token from `accord
// token create`, and trusts its key as provider:NAME with `accord keys
// trust` once it has beaten. A second call restarts it on the same home.
func (cp *meshControl) startAgent(name string) *meshAgent {
	t := cp.t
	t.Helper()
	a := cp.agents[name]
	if a == nil {
		a = &meshAgent{name: name, home: newHome(t)}
		var tok struct{ Token string }
		lastJSON(t, cli(t, cp.bin, "--home", cp.home, "token", "create", "--role", "provider", "--name", name, "--json"), &tok)
		a.tokenFile = filepath.Join(a.home, "provider.token")
		if err := os.WriteFile(a.tokenFile, []byte(tok.Token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cp.agents[name] = a
	}
	a.starts++
	cmd := cp.net.command(name, cp.bin, "--home", a.home, "provider", "serve", "--name", name,
		"--temporal-address", cp.tc.addr, "--api", cp.apiURL, "--token-file", a.tokenFile,
		"--heartbeat", "1s", "--overcommit", "4", "--json")
	a.proc = startProc(t, "provider "+name, filepath.Join(a.home, "agent.log"), cmd)
	a.proc.jsonLine(t, "key_id", 2*time.Minute)
	since := time.Now()
	waitFor(t, time.Minute, name+"'s heartbeat", func() bool {
		h, ok := cp.reg.Live(name)
		return ok && !h.LastSeen.Before(since)
	})
	if a.pub == "" {
		key, err := provenance.LoadKey(filepath.Join(a.home, "keys", "provider.key"))
		if err != nil {
			t.Fatal(err)
		}
		a.pub = filepath.Join(a.home, "provider.pub")
		if err := os.WriteFile(a.pub, key.PublicPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		cli(t, cp.bin, "--home", cp.home, "keys", "trust", a.pub, "--scope", "provider:"+name, "--name", name)
	}
	return a
}

// meshJobSpec writes a job of tenant whose tasks only providers may run.
func meshJobSpec(t *testing.T, dir, name, tenant string, providers []string, tasks string) string {
	t.Helper()
	doc := fmt.Sprintf("---\naccord: v1\nname: %s\nversion: 1.0.0\ntenant: %s\n---\n\n# %s\n\n## Tasks\n\n```yaml\n%s```\n\n"+
		"## Placement\n\n```yaml\nallow_providers: [%s]\n```\n\n"+
		"## Budget\n\n```yaml\nmax_price: 500\ncurrency: USD\npreference: cheapest\n```\n\n"+
		"## Settlement\n\n```yaml\npay_on_success: true\n```\n", name, tenant, name, tasks, strings.Join(providers, ", "))
	p := filepath.Join(dir, name+".md")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
