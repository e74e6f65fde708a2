#!/usr/bin/env bash
# End-to-end test on a kind cluster (needs a Docker engine):
#   1. create a kind cluster (hack/kind-config.yaml), build the image (Dockerfile), load it
#   2. helm install charts/supercluster-operator, apply examples/supercluster.yaml (namespace demo)
#   3. wait for the SuperCluster's Ready condition
#   4. the seed's scenario from a nats-box pod: a replier in east, a request from west answered
#      'hello from east'; `nats server list` (system account) shows servers of both clusters
#   5. scale Cluster east to 3 servers, add a third Cluster (north); every Cluster's status must
#      report gateway links to both others; the SuperCluster is Ready again
#   6. delete the kind cluster (unless SC_E2E_KEEP=1)
# Environment: SC_KIND_CLUSTER (default supercluster-e2e), SC_E2E_IMAGE (default the chart's
# image, ghcr.io/supercluster/scserver:0.1.0), SC_NATS_BOX_IMAGE, SC_E2E_TIMEOUT (seconds per
# wait, default 300), SC_E2E_KEEP=1 keeps the cluster, SC_E2E_REUSE=1 reuses an existing one.
# Exit codes: 0 passed, 1 failed, 3 prerequisites missing (docker engine, kind, kubectl, helm).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SC_CACHE:-$repo/.cache}"
export PATH="$cache/bin:$PATH"
cluster="${SC_KIND_CLUSTER:-supercluster-e2e}"
image="${SC_E2E_IMAGE:-ghcr.io/supercluster/scserver:0.1.0}"
nats_box="${SC_NATS_BOX_IMAGE:-natsio/nats-box:0.14.5}"
timeout="${SC_E2E_TIMEOUT:-300}"
ns="demo"
op_ns="supercluster-system"
release="sco"
kind_version="${SC_KIND_VERSION:-v0.30.0}"

log() { printf '\n=== e2e-kind: %s\n' "$*" >&2; }
die() { echo "e2e-kind: FAILED: $*" >&2; exit 1; }
missing() { echo "e2e-kind: SKIP: $*" >&2; exit 3; }

# ---------------------------------------------------------------- prerequisites
command -v docker > /dev/null || missing "docker CLI not found"
docker info > /dev/null 2>&1 || missing "no Docker engine (docker info failed)"
if ! command -v kind > /dev/null; then
  if command -v go > /dev/null && [[ "${SC_E2E_INSTALL_KIND:-1}" == 1 ]]; then
    log "installing kind $kind_version (go install sigs.k8s.io/kind) into $cache/bin"
    GOBIN="$cache/bin" go install "sigs.k8s.io/kind@$kind_version" || missing "cannot install kind"
  else
    missing "kind not found (go install sigs.k8s.io/kind@$kind_version)"
  fi
fi
for tool in kubectl helm; do
  command -v "$tool" > /dev/null || missing "$tool not found: run hack/envtest.sh"
done

kubeconfig="$(mktemp)"
export KUBECONFIG="$kubeconfig"
created=0

dump() {
  # what a person would look at first when something fails
  echo "----- diagnostics" >&2
  kubectl get nodes -o wide >&2 || true
  kubectl -n "$op_ns" get all >&2 || true
  kubectl -n "$op_ns" logs "deployment/$release-supercluster-operator" --tail=200 >&2 || true
  kubectl -n "$ns" get superclusters,clusters,statefulsets,pods,services -o wide >&2 || true
  kubectl -n "$ns" get superclusters,clusters -o yaml >&2 || true
  kubectl -n "$ns" get events --sort-by=.lastTimestamp >&2 || true
  for pod in $(kubectl -n "$ns" get pods -o name 2> /dev/null); do
    echo "--- $pod" >&2
    kubectl -n "$ns" logs "$pod" --all-containers --tail=50 >&2 || true
  done
}

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 && $rc -ne 3 ]]; then
    dump
  fi
  if [[ $created == 1 && "${SC_E2E_KEEP:-0}" != 1 ]]; then
    log "deleting kind cluster $cluster"
    kind delete cluster --name "$cluster" > /dev/null 2>&1 || true
  fi
  rm -f "$kubeconfig"
  exit "$rc"
}
trap cleanup EXIT

# wait_for <description> <command...>: retry the command until it succeeds or $timeout passes
wait_for() {
  local what="$1" deadline=$((SECONDS + timeout))
  shift
  until "$@" > /dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for: $what"
    sleep 3
  done
}

# ---------------------------------------------------------------- 1. cluster and image
if kind get clusters 2> /dev/null | grep -qx "$cluster"; then
  [[ "${SC_E2E_REUSE:-0}" == 1 ]] || die "kind cluster $cluster exists (SC_E2E_REUSE=1 to reuse)"
  kind export kubeconfig --name "$cluster"
else
  log "creating kind cluster $cluster"
  kind create cluster --name "$cluster" --config "$repo/hack/kind-config.yaml" --wait 120s
  created=1
fi

log "building $image"
docker build --tag "$image" \
  --build-arg "REVISION=$(git -C "$repo" rev-parse HEAD 2> /dev/null || echo unknown)" "$repo"
docker run --rm "$image" scserver --help > /dev/null || die "image: scserver does not run"
docker run --rm "$image" scoperator --help > /dev/null || die "image: scoperator does not run"
[[ "$(docker inspect --format '{{.Config.User}}' "$image")" != "" ]] || die "image runs as root"
kind load docker-image --name "$cluster" "$image"
docker image inspect "$nats_box" > /dev/null 2>&1 || docker pull "$nats_box"
kind load docker-image --name "$cluster" "$nats_box"

# ---------------------------------------------------------------- 2. operator and example
log "helm install $release"
repository="${image%:*}"
tag="${image##*:}"
helm install "$release" "$repo/charts/supercluster-operator" \
  --namespace "$op_ns" --create-namespace \
  --set "container.image.repository=$repository" --set "container.image.tag=$tag" \
  --set container.image.pullPolicy=Never \
  --wait --timeout "${timeout}s"
kubectl -n "$op_ns" rollout status "deployment/$release-supercluster-operator" --timeout="${timeout}s"

log "applying examples/supercluster.yaml"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f "$repo/examples/supercluster.yaml"

# ---------------------------------------------------------------- 3. Ready
log "waiting for SuperCluster demo to be Ready"
wait_for "Cluster objects" kubectl -n "$ns" get statefulset east west
kubectl -n "$ns" rollout status statefulset/east --timeout="${timeout}s"
kubectl -n "$ns" rollout status statefulset/west --timeout="${timeout}s"
kubectl -n "$ns" wait supercluster/demo --for=condition=Ready --timeout="${timeout}s"

# ---------------------------------------------------------------- 4. the seed's scenario
log "seed scenario from a nats-box pod"
kubectl -n "$ns" run nats-box --image="$nats_box" --image-pull-policy=Never --restart=Never \
  --command -- sleep 3600
kubectl -n "$ns" wait pod/nats-box --for=condition=Ready --timeout="${timeout}s"
box() { kubectl -n "$ns" exec nats-box -- "$@"; }
box sh -c "nohup nats --server nats://east:4222 reply greet 'hello from east' \
  > /tmp/reply.log 2>&1 &"

request() {
  box nats --server nats://west:4222 request greet '' --timeout=2s 2>&1 | grep -q 'hello from east'
}
wait_for "a request from west answered by east (interest crosses the gateway)" request
box nats --server nats://west:4222 request greet '' --timeout=2s

servers="$(box nats --server nats://east:4222 --user sys --password sys server list 2>&1)"
echo "$servers"
for name in east west; do
  grep -q "$name" <<< "$servers" || die "nats server list does not show cluster $name"
done

# ---------------------------------------------------------------- 5. scale and grow
log "scaling Cluster east to 3 servers"
kubectl -n "$ns" patch cluster east --type=merge -p '{"spec":{"replicas":3}}'
wait_for "StatefulSet east at 3 replicas" \
  sh -c "[ \"\$(kubectl -n $ns get statefulset east -o jsonpath='{.spec.replicas}')\" = 3 ]"
kubectl -n "$ns" rollout status statefulset/east --timeout="${timeout}s"
ready_servers() {
  [[ "$(kubectl -n "$ns" get cluster east -o jsonpath='{.status.readyServers}')" == 3 ]]
}
wait_for "Cluster east reporting 3 ready servers" ready_servers

log "adding Cluster north"
kubectl apply -f - << EOF
apiVersion: supercluster.dev/v1alpha1
kind: Cluster
metadata:
  name: north
  namespace: $ns
spec:
  superCluster: demo
  replicas: 1
EOF
wait_for "StatefulSet north" kubectl -n "$ns" get statefulset north
kubectl -n "$ns" rollout status statefulset/north --timeout="${timeout}s"

links_complete() {
  local c
  for c in east west north; do
    [[ "$(kubectl -n "$ns" get cluster "$c" -o jsonpath='{.status.connectedGateways}')" == 2 ]] \
      || return 1
  done
}
wait_for "every Cluster linked to the two others (status.connectedGateways == 2)" links_complete
for c in east west north; do
  kubectl -n "$ns" get cluster "$c" -o jsonpath="{.metadata.name}: {.status.gateways}{'\n'}"
done
total() { [[ "$(kubectl -n "$ns" get supercluster demo -o jsonpath='{.status.clustersTotal}')" == 3 ]]; }
wait_for "SuperCluster counting 3 clusters" total
kubectl -n "$ns" wait supercluster/demo --for=condition=Ready --timeout="${timeout}s"

north_request() {
  box nats --server nats://north:4222 request greet '' --timeout=2s 2>&1 | grep -q 'hello from east'
}
wait_for "a request from north answered by east" north_request

log "PASSED"
