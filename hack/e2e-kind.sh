#!/usr/bin/env bash
# The end-to-end scenario on a kind cluster (hack/kind-config.yaml: a control plane and two
# workers): hack/e2e-scenario.sh with SC_E2E_PROVIDER=kind. Needs a Docker engine that can run
# privileged containers and kind (installed with `go install sigs.k8s.io/kind` when Go is there).
# On a machine where kind cannot create a cluster this fails with the reason; `make test` and
# hack/e2e-scenario.sh then use the host node instead.
set -euo pipefail
export SC_E2E_PROVIDER=kind
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/e2e-scenario.sh" "$@"
