package jobclient_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/settlement/sweep"
	"github.com/accordmesh/accord/workers/devserver"
	"github.com/accordmesh/accord/workers/jobclient"
)

// Against a real (embedded) Temporal server: a started workflow is
// running, a terminated one closed, an unknown ID not found.
func TestStatesAgainstServer(t *testing.T) {
	srv, err := devserver.Start(devserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := client.Dial(client.Options{HostPort: srv.Address(), Namespace: srv.Namespace()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// No worker polls this queue: the workflow stays running until terminated.
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "job-1", TaskQueue: "nobody"}, "Nothing"); err != nil {
		t.Fatal(err)
	}
	states := jobclient.States{Client: c}
	check := func(job string, want sweep.State) {
		t.Helper()
		if got, err := states.JobState(ctx, job); err != nil || got != want {
			t.Fatalf("JobState(%s) = %q, %v; want %q", job, got, err, want)
		}
	}
	check("job-1", sweep.Running)
	if err := c.TerminateWorkflow(ctx, "job-1", "", "test"); err != nil {
		t.Fatal(err)
	}
	check("job-1", sweep.Closed)
	check("job-unknown", sweep.NotFound)
}
