package queue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const ref = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func entry(id string, at time.Time) Entry {
	return Entry{JobID: id, Tenant: "demo", PlanRef: ref, Enqueued: at, Deadline: at.Add(time.Minute)}
}

func TestQueue(t *testing.T) {
	ctx := context.Background()
	q, err := Open(filepath.Join(t.TempDir(), "q"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"job-b", "job-a", "job-c"} {
		if err := q.Put(ctx, entry(id, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	// Put is idempotent: the same entry again is one entry.
	if err := q.Put(ctx, entry("job-b", t0)); err != nil {
		t.Fatal(err)
	}
	got, bad, err := q.List(ctx, 2)
	if err != nil || bad != 0 || len(got) != 2 || got[0].JobID != "job-b" || got[1].JobID != "job-a" {
		t.Fatalf("list: %+v bad %d err %v", got, bad, err)
	}
	for i, want := range []bool{true, false} { // the same reason twice is told once
		if notify, err := q.Note(ctx, "job-a", t0.Add(time.Hour), "not placed: local: too small (cpu)", 5); err != nil || notify != want {
			t.Fatalf("note %d: notify %v, %v", i, notify, err)
		}
	}
	if notify, _ := q.Note(ctx, "job-b", t0, "one", 1); !notify {
		t.Fatal("first note not told")
	}
	if notify, _ := q.Note(ctx, "job-b", t0, "two", 1); notify {
		t.Fatal("a note past maxNotes is told")
	}
	e, err := q.Get(ctx, "job-a")
	if err != nil || !strings.Contains(e.Reason, "too small") || !e.Noted.Equal(t0.Add(time.Hour)) {
		t.Fatalf("get after note: %+v %v", e, err)
	}
	if e, err = q.Remove(ctx, "job-a"); err != nil || e.Reason == "" {
		t.Fatalf("remove: %+v %v", e, err)
	}
	// Removing twice, and noting a removed job, change nothing.
	if e, err = q.Remove(ctx, "job-a"); err != nil || e.JobID != "" {
		t.Fatalf("second remove: %+v %v", e, err)
	}
	if notify, err := q.Note(ctx, "job-a", t0, "late", 5); err != nil || notify {
		t.Fatal(notify, err)
	}
	if _, err := q.Get(ctx, "job-a"); !errors.Is(err, ErrNotQueued) {
		t.Fatalf("noted a removed job back into the queue: %v", err)
	}
}

// TestQueueHostile: IDs that would leave the directory, bad refs, and
// files that are not entries are refused or skipped.
func TestQueueHostile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, e := range []Entry{
		entry("../escape", now), entry("", now), entry(".hidden", now), entry(strings.Repeat("a", 200), now),
		{JobID: "j", PlanRef: "sha256:xyz", Enqueued: now, Deadline: now},
		{JobID: "j", PlanRef: ref, Enqueued: now, Deadline: now.Add(-time.Second)},
	} {
		if err := q.Put(ctx, e); !errors.Is(err, ErrInvalid) {
			t.Errorf("put %q: %v, want ErrInvalid", e.JobID, err)
		}
	}
	if _, err := q.Remove(ctx, "../x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("remove ../x: %v", err)
	}
	if err := q.Put(ctx, entry("good", now)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "other.json"), []byte(`{"job_id":"good","plan_ref":"`+ref+`"}`), 0o600)
	os.WriteFile(filepath.Join(dir, "big.json"), make([]byte, MaxEntry+1), 0o600)
	os.WriteFile(filepath.Join(dir, "junk.txt"), []byte("x"), 0o600)
	got, bad, err := q.List(ctx, 0)
	if err != nil || len(got) != 1 || got[0].JobID != "good" || bad != 2 {
		t.Fatalf("list: %+v bad %d err %v", got, bad, err)
	}
}
