#!/usr/bin/env bash
# The end-to-end scenario on a kind cluster (hack/kind-config.yaml: a control plane and two
# workers): hack/e2e-scenario.sh with SC_E2E_PROVIDER=kind. Needs a Docker engine that can run
# privileged containers and kind (installed with `go install sigs.k8s.io/kind` when Go is there).
# Exit codes: 0 passed, 1 failed, 3 kind cannot create a cluster here (the reason on stderr;
# `make test` and hack/e2e-scenario.sh then use the host node instead).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
reason="$("$repo/.venv/bin/python" -c \
  'from tests.e2e.providers import probe_kind; print(probe_kind() or "")')"
if [[ -n "$reason" ]]; then
  echo "e2e-kind: SKIP: $reason" >&2
  exit 3
fi
export SC_E2E_PROVIDER=kind
exec bash "$repo/hack/e2e-scenario.sh" "$@"
