# An independent witness for an Accord log, run by a party other than the
# log's operator. Its key and state live on a host volume: a witness that
# forgets what it cosigned could be made to cosign a fork.
#
#   accord witness key --key /srv/accord-witness/witness.key --name witness.example.net   # once
#   nomad job run -var accord_url=... -var 'log=accord.local - 4711=/srv/accord-witness/log.pub' \
#       deploy/nomad/accord-witness.nomad.hcl

variable "accord_url" {
  type = string
}

variable "log" {
  type        = string
  description = "ORIGIN=KEYFILE of the log to witness"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

job "accord-witness" {
  type        = "service"
  datacenters = var.datacenters

  group "witness" {
    count = 1

    network {
      port "http" {
        static = 7380
      }
    }

    volume "state" {
      type   = "host"
      source = "accord-witness"
    }

    task "accord" {
      driver = "exec"

      artifact {
        source      = var.accord_url
        destination = "local/accord"
        mode        = "file"
      }

      volume_mount {
        volume      = "state"
        destination = "/srv/accord-witness"
      }

      config {
        command = "local/accord"
        args = [
          "witness", "serve", "--addr", "0.0.0.0:${NOMAD_PORT_http}",
          "--key", "/srv/accord-witness/witness.key",
          "--state", "/srv/accord-witness/state", "--log", var.log,
        ]
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
