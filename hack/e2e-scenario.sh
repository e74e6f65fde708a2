#!/usr/bin/env bash
# The end-to-end scenario on real pods (tests/e2e/test_e2e_scenario.py), outside `make test`:
#   hack/e2e-scenario.sh [pytest args...]
# The cluster provider is chosen by tests/e2e/providers.py: kind where a Docker engine, kind (or
# Go to install it) and privileged containers work; otherwise a single-node Kubernetes on this
# host (hack/node-up.sh, as root). SC_E2E_PROVIDER=kind|host forces one.
# Steps: build and load the image, helm install charts/supercluster-operator, apply
# examples/supercluster.yaml, Ready, the seed scenario and `nats server list` from a pod, mutual
# TLS on routes and gateways, scale / add / remove a Cluster / change a password while a nats-py
# request stream keeps every client and every request, a rolling update to a rebuilt tag with
# zero failed requests, a deleted pod (Degraded, then Ready, with Events), `kubectl describe`,
# the operator's metrics. The cluster is torn down at the end, also on failure.
# Environment: SC_E2E_TIMEOUT (seconds per wait, default 300), SC_E2E_KEEP=1 keeps the cluster,
# SC_E2E_REUSE=1 reuses an existing kind cluster, SC_KIND_CLUSTER (default sc-e2e),
# SC_E2E_IMAGE (default ghcr.io/supercluster/scserver:0.1.0, the example's image).
# SC_E2E_HELM_ARGS: extra `helm install` arguments (default none, as the README installs it).
# Exit codes: pytest's (0 passed, 1 failed, 5 nothing collected).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SC_CACHE:-$repo/.cache}"
export SC_CACHE="$cache" PATH="$repo/.venv/bin:$cache/bin:$PATH"
cd "$repo"
exec "$repo/.venv/bin/pytest" -q -p no:cacheprovider -rs tests/e2e -m e2e "$@"
