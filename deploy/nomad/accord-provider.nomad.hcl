# A provider agent on a provider's own Nomad cluster: `accord provider serve`
# polls its own task queue (accord-exec-NAME) on the control plane's
# Temporal, signs its execution attestations with its own key, publishes its
# profile to the control plane's API and exchanges the job's data through it.
# Its containerd is a private daemon under its home, so it runs as root on
# a host volume that survives restarts (running tasks outlive the agent).
#
#   nomad var put nomad/jobs/accord-provider api_token=<accord token create --role provider --name NAME>
#   nomad job run -var accord_url=https://artifacts.example/accord-linux-amd64 -var name=gpu-east \
#       -var temporal_address=cp.example.org:7233 -var api_url=https://cp.example.org:8480 \
#       deploy/nomad/accord-provider.nomad.hcl
#
# The signing key is created under the home on first start; trust its public
# key (HOME/keys/provider.pub) on the control plane with
# `accord keys trust provider.pub --scope provider:NAME`.

variable "accord_url" {
  type        = string
  description = "URL of the accord binary (linux/amd64)"
}

variable "accord_checksum" {
  type    = string
  default = ""
}

variable "name" {
  type        = string
  description = "the provider's name: its queue is accord-exec-NAME, its trust scope provider:NAME"
}

variable "temporal_address" {
  type = string
}

variable "temporal_namespace" {
  type    = string
  default = "default"
}

variable "api_url" {
  type        = string
  description = "the control plane's API (heartbeats, blobs)"
}

variable "home_volume" {
  type        = string
  default     = "accord-provider"
  description = "host volume for the agent's home (containerd state, key, run records)"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

job "accord-provider" {
  type        = "service"
  datacenters = var.datacenters

  group "agent" {
    count = 1

    volume "home" {
      type      = "host"
      source    = var.home_volume
      read_only = false
    }

    restart {
      attempts = 10
      interval = "30m"
      delay    = "15s"
      mode     = "delay"
    }

    task "accord" {
      driver = "raw_exec"
      user   = "root"

      artifact {
        source      = var.accord_url
        destination = "local/accord"
        mode        = "file"
        options {
          checksum = var.accord_checksum
        }
      }

      volume_mount {
        volume      = "home"
        destination = "/var/lib/accord-provider"
      }

      template {
        destination = "secrets/api.token"
        perms       = "0600"
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/accord-provider\" }}{{ .api_token }}{{ end }}"
      }

      config {
        command = "local/accord"
        args = [
          "provider", "serve",
          "--home", "/var/lib/accord-provider",
          "--name", var.name,
          "--temporal-address", var.temporal_address,
          "--namespace", var.temporal_namespace,
          "--api", var.api_url,
          "--token-file", "${NOMAD_SECRETS_DIR}/api.token",
        ]
      }

      resources {
        cpu    = 500
        memory = 512
      }

      # Only the agent is stopped; its containerd and tasks keep running.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"
    }
  }
}
