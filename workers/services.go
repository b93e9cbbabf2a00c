package workers

import (
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/workflows"
)

// StartServices starts a services host's worker: it polls
// workflows.TaskQueueServices for the deployment activities and runs them
// on h (replicas, endpoints, billing).
func StartServices(c client.Client, h *services.Host, t Tuning) (*Worker, error) {
	tun := t.withDefaults()
	if err := tun.Validate(); err != nil {
		return nil, err
	}
	tw := worker.New(c, workflows.TaskQueueServices, tun.WorkerOptions())
	workflows.RegisterDeploymentActivities(tw, h)
	if err := tw.Start(); err != nil {
		return nil, fmt.Errorf("workers: start %s: %w", workflows.TaskQueueServices, err)
	}
	return &Worker{workers: []worker.Worker{tw}}, nil
}
