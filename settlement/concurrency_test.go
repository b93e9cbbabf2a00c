package settlement

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// settleReq is the settlement every job of the concurrency tests gets:
// price 1000 in a hold of 1100, fee 5%, a 10% royalty.
func settleReq(job string) SettleRequest {
	return SettleRequest{Job: job, Attempt: 1, Succeeded: true, PayOnSuccess: true, Price: 1000,
		FeeBP: 500, Royalties: []Royalty{{Account: "model-co", BasisPoints: 1000}}}
}

func holdReq(job string) HoldRequest {
	return HoldRequest{Job: job, Tenant: "acme", Provider: "gpu-co", Currency: "USD", Price: 1000, MarginBP: 1000, Cap: 5000, Attempt: 1}
}

// TestConcurrentSettlement holds and settles many jobs from many goroutines,
// each job twice at the same time (an activity and its retry), and checks
// that every job was held and settled exactly once and no money was lost.
func TestConcurrentSettlement(t *testing.T) {
	const jobs, workers = 60, 8
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		if _, err := l.Deposit(ctx, DepositRequest{Tenant: "acme", Currency: "USD", Amount: jobs * 1100, Key: "fund"}); err != nil {
			t.Fatal(err)
		}
		work := make(chan string)
		type result struct {
			job              string
			holdID, settleID int64
			replays          int
		}
		results := make(chan result, 2*jobs)
		errs := make(chan error, 2*jobs)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for job := range work {
					e, err := l.Hold(ctx, holdReq(job))
					if err != nil {
						errs <- fmt.Errorf("hold %s: %w", job, err)
						continue
					}
					s, err := l.Settle(ctx, settleReq(job))
					if err != nil {
						errs <- fmt.Errorf("settle %s: %w", job, err)
						continue
					}
					r := result{job: job, holdID: e.Transaction.ID, settleID: s.Transaction.ID}
					if e.Transaction.Replayed {
						r.replays++
					}
					if s.Transaction.Replayed {
						r.replays++
					}
					results <- r
				}
			}()
		}
		for i := range jobs {
			job := fmt.Sprintf("job-%03d", i)
			work <- job
			work <- job // the same calls again, concurrently
		}
		close(work)
		wg.Wait()
		close(results)
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		seen := map[string]result{}
		replays := 0
		for r := range results {
			replays += r.replays
			if prev, ok := seen[r.job]; ok && (prev.holdID != r.holdID || prev.settleID != r.settleID) {
				t.Errorf("%s settled twice: %+v and %+v", r.job, prev, r)
			}
			seen[r.job] = r
		}
		if len(seen) != jobs || replays != 2*jobs {
			t.Fatalf("%d jobs settled, %d replays; want %d and %d", len(seen), replays, jobs, 2*jobs)
		}
		// Per job: charge 1000, fee 50, royalty 100, provider 850, refund 100.
		for acct, want := range map[string]int64{
			"provider:gpu-co": 850 * jobs, "platform:fee": 50 * jobs, "owner:model-co": 100 * jobs,
			"tenant:acme": 100 * jobs,
		} {
			if got := mustBalance(t, l, acct, "USD"); got != want {
				t.Errorf("%s = %d, want %d", acct, got, want)
			}
		}
		if r := mustCheck(t, l); r.Transactions != 1+2*jobs {
			t.Fatalf("%d transactions, want %d", r.Transactions, 1+2*jobs)
		}
	})
}

// crashChildEnv, when set, turns TestCrashChild into the child process of
// TestKilledMidSettlement: it settles the jobs named in the environment until
// it is killed.
const crashChildEnv = "ACCORD_SETTLEMENT_CRASH_DSN"

// TestKilledMidSettlement settles jobs in a child process (this test binary
// re-executed), kills it with SIGKILL while it is writing, and checks that the
// ledger is intact and every job is either completely settled or untouched.
func TestKilledMidSettlement(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	const jobs = 400
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		if _, err := l.Deposit(ctx, DepositRequest{Tenant: "acme", Currency: "USD", Amount: jobs * 1100, Key: "fund"}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.DepositBond(ctx, BondRequest{Provider: "gpu-co", Currency: "USD", Amount: 1_000_000, Key: "bond"}); err != nil {
			t.Fatal(err)
		}
		for i := range jobs {
			if _, err := l.Hold(ctx, holdReq(fmt.Sprintf("job-%03d", i))); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dsn, "ACCORD_SETTLEMENT_CRASH_JOBS="+strconv.Itoa(jobs))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once it has settled a good number of jobs, while its
		// workers are in the middle of more.
		sc := bufio.NewScanner(out)
		settled := 0
		startedBefore := map[string]bool{}
		deadline := time.After(2 * time.Minute)
		lines := make(chan string)
		go func() {
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
	wait:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break wait
				}
				if job, ok := strings.CutPrefix(line, "start "); ok {
					startedBefore[job] = true
				}
				if strings.HasPrefix(line, "settled ") {
					settled++
					if settled >= jobs/4 {
						break wait
					}
				}
			case <-deadline:
				break wait
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		// What the child wrote before it died: jobs it started but never
		// reported were in flight when it was killed.
		started := map[string]bool{}
		for line := range lines {
			if job, ok := strings.CutPrefix(line, "start "); ok {
				started[job] = true
			}
			if strings.HasPrefix(line, "settled ") {
				settled++
			}
		}
		if settled < jobs/4 {
			t.Fatalf("child settled only %d jobs before the deadline", settled)
		}
		inFlight := len(startedBefore) + len(started) - settled

		// A fresh handle, as after a restart.
		l.Close()
		l = openLedger(t, dsn)
		mustCheck(t, l)
		var done, untouched int64
		for i := range jobs {
			job := fmt.Sprintf("job-%03d", i)
			j, err := l.job(ctx, l.db, job)
			if err != nil {
				t.Fatal(err)
			}
			esc := mustBalance(t, l, EscrowAccount(job), "USD")
			tx, err := l.Transaction(ctx, Key(job, "settle", 1))
			switch {
			case j.State == JobSettled && esc == 0 && err == nil && len(tx.Postings) == 8:
				done++
			case j.State == JobHeld && esc == 1100 && err != nil:
				untouched++
			default:
				t.Fatalf("%s is half-settled: state %s, escrow %d, settle tx %+v (%v)", job, j.State, esc, tx, err)
			}
		}
		if got := mustBalance(t, l, "provider:gpu-co", "USD"); got != 850*done {
			t.Fatalf("provider has %d for %d settled jobs", got, done)
		}
		t.Logf("killed with %d settlements in flight: %d reported, %d jobs settled, %d untouched", inFlight, settled, done, untouched)
		// The survivors settle normally afterwards.
		for i := range jobs {
			if _, err := l.Settle(ctx, settleReq(fmt.Sprintf("job-%03d", i))); err != nil {
				t.Fatal(err)
			}
		}
		if got := mustBalance(t, l, "provider:gpu-co", "USD"); got != 850*jobs {
			t.Fatalf("provider has %d after settling all %d jobs", got, jobs)
		}
		mustCheck(t, l)
	})
}

// TestCrashChild is the child of TestKilledMidSettlement; on its own it
// does nothing.
func TestCrashChild(t *testing.T) {
	dsn := os.Getenv(crashChildEnv)
	if dsn == "" {
		t.Skip("only runs as the child of TestKilledMidSettlement")
	}
	jobs, _ := strconv.Atoi(os.Getenv("ACCORD_SETTLEMENT_CRASH_JOBS"))
	l := openLedger(t, dsn)
	ctx := context.Background()
	work := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				job := fmt.Sprintf("job-%03d", i)
				mu.Lock()
				fmt.Println("start", job)
				mu.Unlock()
				if _, err := l.Settle(ctx, settleReq(job)); err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Println("settled", job)
				mu.Unlock()
			}
		}()
	}
	for i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
}

// TestConcurrentHoldsOfOneJob races placements of one job under different
// attempts: exactly one holds the escrow, the others fail with ErrJobState.
func TestConcurrentHoldsOfOneJob(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLedger(t, dsn)
		fund(t, l, "acme", 100_000)
		const n = 8
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := holdReq("job-race")
				r.Attempt = i + 1
				_, err := l.Hold(ctx, r)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		ok := 0
		for err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrJobState):
				t.Errorf("racing hold: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d holds succeeded, want 1", ok)
		}
		if got := mustBalance(t, l, "tenant:acme", "USD"); got != 100_000-1100 {
			t.Fatalf("tenant = %d after one hold of 1100", got)
		}
		mustCheck(t, l)
	})
}
