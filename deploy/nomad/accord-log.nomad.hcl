# The shared transparency log (`accord log serve`) with its state on a host
# volume, and, in the same job, nothing else: witnesses belong to other
# operators (accord-witness.nomad.hcl is for them).
#
#   accord log token add control-plane --home /srv/accord-log   # once, on the volume
#   nomad job run -var accord_url=... -var witness_url=https://witness.example.net:7380 \
#       deploy/nomad/accord-log.nomad.hcl

variable "accord_url" {
  type = string
}

variable "witness_url" {
  type        = string
  description = "a witness that cosigns this log's checkpoints"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

job "accord-log" {
  type        = "service"
  datacenters = var.datacenters

  group "log" {
    count = 1

    network {
      port "https" {
        static = 3443
      }
    }

    volume "home" {
      type   = "host"
      source = "accord-log"
    }

    task "accord" {
      driver = "exec"

      artifact {
        source      = var.accord_url
        destination = "local/accord"
        mode        = "file"
      }

      volume_mount {
        volume      = "home"
        destination = "/srv/accord-log"
      }

      template {
        destination = "secrets/tls.crt"
        data        = "{{ with nomadVar \"nomad/jobs/accord-log\" }}{{ .tls_cert }}{{ end }}"
      }

      template {
        destination = "secrets/tls.key"
        perms       = "0600"
        data        = "{{ with nomadVar \"nomad/jobs/accord-log\" }}{{ .tls_key }}{{ end }}"
      }

      config {
        command = "local/accord"
        args = [
          "log", "serve", "--home", "/srv/accord-log",
          "--addr", "0.0.0.0:${NOMAD_PORT_https}",
          "--tls-cert", "${NOMAD_SECRETS_DIR}/tls.crt", "--tls-key", "${NOMAD_SECRETS_DIR}/tls.key",
          "--witness", var.witness_url, "--witness-every", "30s",
        ]
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
