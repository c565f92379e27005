# rapid as a Nomad service job (docker driver; the podman driver takes the same
# config block): one rapid per allocation, PID 1 of its container.
#
# On stop Nomad deregisters the service, then sends kill_signal; rapid turns
# /_/ready to 503 and drains in-flight and queued invokes for at most
# --drain-timeout, shuts the sandbox down (up to 2 s) and exits 0. kill_timeout
# is above both (and at most the client's max_kill_timeout, 30 s by default).
#
# The scaling block is for the Nomad Autoscaler with its Prometheus plugin: the
# same figures as deploy/keda/scaledobject.yaml.
job "my-function" {
  type = "service"

  group "function" {
    count = 2

    network {
      port "invoke" {
        to = 8080
      }
      port "http" {
        to = 8081
      }
      port "metrics" {
        to = 9100
      }
    }

    service {
      name = "my-function"
      port = "invoke"

      check {
        name     = "ready"
        type     = "http"
        port     = "http"
        path     = "/_/ready"
        interval = "2s"
        timeout  = "1s"
      }

      check {
        name     = "health"
        type     = "http"
        port     = "http"
        path     = "/_/health"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "10s"
        }
      }
    }

    scaling {
      min     = 1
      max     = 20
      enabled = true

      policy {
        check "busy_sandboxes" {
          source = "prometheus"
          query  = "sum(rapid_concurrency_in_use{function=\"my-function\"}) + sum(rapid_queue_depth{function=\"my-function\"})"

          strategy "target-value" {
            target = 1
          }
        }
      }
    }

    task "rapid" {
      driver       = "docker"
      user         = "1000:1000"
      kill_signal  = "SIGTERM"
      kill_timeout = "25s"

      config {
        image           = "registry.example/my-function:1"
        ports           = ["invoke", "http", "metrics"]
        args            = ["--watchdog-address=0.0.0.0:8081", "--metrics-port=9100", "--drain-timeout=20s", "--max-queue=64"]
        readonly_rootfs = true

        mount {
          type   = "tmpfs"
          target = "/tmp"
          tmpfs_options {
            size = 536870912
          }
        }

        ulimit {
          nofile = "16384:16384"
          nproc  = "4096:4096"
        }
      }

      env {
        AWS_LAMBDA_FUNCTION_NAME        = "my-function"
        AWS_LAMBDA_FUNCTION_TIMEOUT     = "15"
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE = "128"
      }

      resources {
        cpu    = 500
        memory = 192
      }
    }
  }
}
