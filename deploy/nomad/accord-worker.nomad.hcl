# Runs Accord's worker on a Nomad cluster: it polls Accord's execution task
# queue on Temporal and runs the tasks it receives as Nomad batch jobs on
# this same cluster (the pool named by var.pool).
#
#   nomad var put nomad/jobs/accord-worker nomad_token=<token with submit-job on var.namespace>
#   nomad job run -var accord_url=https://artifacts.example/accord-linux-amd64 \
#                 -var temporal_address=temporal.example:7233 deploy/nomad/accord-worker.nomad.hcl
#
# The worker keeps no state of its own that matters across restarts: task
# state lives in Temporal and in Nomad (job IDs derive from task IDs, so a
# rescheduled worker re-attaches to the jobs its predecessor started).
# See docs/nomad.md.

variable "accord_url" {
  type        = string
  description = "URL of the accord binary (linux/amd64) the clients download"
}

variable "accord_checksum" {
  type        = string
  default     = ""
  description = "optional sha256:<hex> of the binary, checked by the artifact getter"
}

variable "temporal_address" {
  type        = string
  description = "Temporal frontend host:port"
}

variable "temporal_namespace" {
  type    = string
  default = "default"
}

variable "queues" {
  type        = list(string)
  default     = ["accord-execution"]
  description = "task queues to poll (accord-control, accord-execution)"
}

variable "pool" {
  type        = string
  default     = "nomad"
  description = "Accord pool name for this cluster"
}

variable "node_pool" {
  type        = string
  default     = "default"
  description = "Nomad node pool whose GPUs Accord sells"
}

variable "namespace" {
  type        = string
  default     = "default"
  description = "Nomad namespace Accord submits task jobs into"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "count" {
  type    = number
  default = 2
}

job "accord-worker" {
  type        = "service"
  datacenters = var.datacenters
  # The worker itself runs anywhere; it places GPU work through Nomad.
  node_pool = "all"

  group "worker" {
    count = var.count

    network {
      port "metrics" {}
    }

    service {
      name     = "accord-worker-metrics"
      provider = "nomad"
      port     = "metrics"
      tags     = ["prometheus"]
      check {
        type     = "tcp"
        interval = "15s"
        timeout  = "3s"
      }
    }

    restart {
      attempts = 10
      interval = "30m"
      delay    = "15s"
      mode     = "delay"
    }

    update {
      max_parallel = 1
      min_healthy_time = "30s"
    }

    task "accord" {
      driver = "exec"

      artifact {
        source      = var.accord_url
        destination = "local/accord"
        mode        = "file"
        options {
          checksum = var.accord_checksum
        }
      }

      # pools.json: the pool this worker executes on, i.e. this cluster,
      # reached through the local agent. The token comes from a Nomad
      # variable so it never sits in the job file.
      template {
        destination = "secrets/home/pools.json"
        perms       = "0600"
        change_mode = "restart"
        data        = <<-EOT
        {
          "version": 1,
          "pools": [
            {
              "name": "${var.pool}",
              "kind": "nomad",
              "options": {
                "address": "http://{{ env "attr.unique.network.ip-address" }}:4646",
                "node_pool": "${var.node_pool}",
                "namespace": "${var.namespace}"{{ with nomadVar "nomad/jobs/accord-worker" }},
                "token": "{{ .nomad_token }}"{{ end }}
              },
              "attached_at": "2026-01-01T00:00:00Z"
            }
          ]
        }
        EOT
      }

      env {
        ACCORD_HOME              = "${NOMAD_SECRETS_DIR}/home"
        ACCORD_TEMPORAL_ADDRESS  = var.temporal_address
      }

      config {
        command = "local/accord"
        args = [
          "worker",
          "--temporal-address", var.temporal_address,
          "--namespace", var.temporal_namespace,
          "--queues", join(",", var.queues),
          "--metrics-addr", "${NOMAD_ADDR_metrics}",
        ]
      }

      resources {
        cpu    = 500
        memory = 512
      }

      kill_timeout = "30s"
    }
  }
}
