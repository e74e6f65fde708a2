# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts that source this
# Shared by hack/node-up.sh, hack/node-down.sh, hack/build-image.sh and hack/node/*.sh: paths,
# logging and the pinned versions. Sourced, never run.

NODE_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NODE_CACHE="${SC_CACHE:-$NODE_REPO/.cache}"
NODE_BIN="$NODE_CACHE/bin"
NODE_STAMPS="$NODE_BIN/.stamps"
# Everything the running node owns: configs, data, logs, pid files. Removed by node-down.sh
# (except the kubeconfig and images, which are cheap to keep and useful after a failure).
NODE_DIR="$NODE_CACHE/node"
NODE_RUN="$NODE_DIR/run"
NODE_LOGS="$NODE_DIR/logs"
NODE_KUBECONFIG="$NODE_DIR/kubeconfig"
# The Kubernetes binaries the node needs on top of envtest's kube-apiserver and etcd.
NODE_KUBE_TOOLS=(kubelet kube-proxy kube-scheduler kube-controller-manager)
NODE_COREDNS_VERSION="${SC_COREDNS_VERSION:-v1.12.4}"
NODE_CRICTL_VERSION="${SC_CRICTL_VERSION:-v1.34.0}"

# Network layout. The API server binds a /32 on a bridge without ports (a dummy link is not
# available here), reachable from pods through the host; the CNI bridge carries the pods.
NODE_API_BRIDGE="${SC_NODE_API_BRIDGE:-scapi0}"
NODE_API_IP="${SC_NODE_API_IP:-10.201.255.1}"
NODE_CNI_BRIDGE="${SC_NODE_CNI_BRIDGE:-sccni0}"
NODE_POD_CIDR="${SC_NODE_POD_CIDR:-10.200.0.0/16}"
NODE_SERVICE_CIDR="${SC_NODE_SERVICE_CIDR:-10.201.0.0/20}"
NODE_DNS_IP="${SC_NODE_DNS_IP:-10.201.0.10}"
NODE_NAME="${SC_NODE_NAME:-sc-node}"
# Local ports (loopback only, except the API server on its bridge address).
NODE_ETCD_PORT="${SC_NODE_ETCD_PORT:-23791}"
NODE_ETCD_PEER_PORT="${SC_NODE_ETCD_PEER_PORT:-23801}"
NODE_API_PORT="${SC_NODE_API_PORT:-6443}"

# Container runtime: Debian's containerd, standalone with its own root, state and socket so that
# it never collides with a containerd that dockerd starts for itself.
NODE_CONTAINERD_SOCK="$NODE_DIR/containerd/containerd.sock"
NODE_PAUSE_IMAGE="registry.k8s.io/pause:3.10-sc"
NODE_DOCKER_PIDFILE="$NODE_RUN/dockerd.pid"
# Present when /var/lib/docker was created by the dockerd this project started (node-down --purge
# removes it only then).
NODE_DOCKER_DATA_MARK="$NODE_CACHE/docker-data-is-ours"

node_log() { echo "${NODE_SCRIPT:-node}: $*" >&2; }
node_die() { echo "${NODE_SCRIPT:-node}: error: $*" >&2; exit 1; }
node_now() { date +%s.%N; }
node_elapsed() { awk -v a="$1" -v b="$(node_now)" 'BEGIN { printf "%.1fs", b - a }'; }

# module_version <go.mod> <module>: the version a go.mod requires (single line or block form)
module_version() {
  sed -nE "s#^(require[[:space:]]+|[[:space:]]+)${2//./\\.} (v[0-9][^ ]*)( //.*)?\$#\\2#p" "$1" | head -n1
}

envtest_kube_version() { module_version "$NODE_REPO/hack/envtest/go.mod" k8s.io/kubernetes; }

node_go() {
  local g
  g="$(command -v go || true)"
  [[ -z "$g" && -x /usr/local/go/bin/go ]] && g=/usr/local/go/bin/go
  [[ -n "$g" ]] || node_die "no Go toolchain found (looked in PATH and /usr/local/go/bin)"
  echo "$g"
}

# ---------------------------------------------------------------- processes
# node_pid_alive <name>: the process recorded in $NODE_RUN/<name>.pid is running
node_pid_alive() {
  local f="$NODE_RUN/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2> /dev/null
}

# node_start <name> <command...>: start a daemon in its own session, log to $NODE_LOGS/<name>.log,
# record its pid in $NODE_RUN/<name>.pid. A daemon already running under that name is kept.
node_start() {
  local name="$1"
  shift
  if node_pid_alive "$name"; then
    return 0
  fi
  mkdir -p "$NODE_RUN" "$NODE_LOGS"
  setsid "$@" >> "$NODE_LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$NODE_RUN/$name.pid"
  node_log "started $name (pid $!, log $NODE_LOGS/$name.log)"
}

# node_stop <name> [timeout s]: TERM the recorded pid, KILL after the timeout, forget it.
node_stop() {
  local name="$1" timeout="${2:-20}" f="$NODE_RUN/$1.pid" pid i t
  [[ -f "$f" ]] || return 0
  t="$(node_now)"
  pid="$(cat "$f")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2> /dev/null; then
    kill -TERM "$pid" 2> /dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      kill -0 "$pid" 2> /dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2> /dev/null; then
      node_log "$name (pid $pid) did not stop in ${timeout}s: KILL"
      kill -KILL "$pid" 2> /dev/null || true
    fi
    node_log "stopped $name (pid $pid) in $(node_elapsed "$t")"
  fi
  rm -f "$f"
}

# node_wait <what> <timeout s> <command...>: run the command until it succeeds.
node_wait() {
  local what="$1" timeout="$2" deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" > /dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
  node_log "$what ready"
}

# ---------------------------------------------------------------- docker engine
# node_docker_up: make a Docker engine answer. An engine that already answers is used as it is
# (and left alone by node-down.sh); otherwise Debian's dockerd is started with its own pidfile,
# without its bridge and iptables rules (image builds use --network host), so it changes nothing
# on the host's network.
node_docker_up() {
  if docker info > /dev/null 2>&1; then
    return 0
  fi
  command -v dockerd > /dev/null || node_die "no Docker engine answers and dockerd is not installed (apt-get install docker.io)"
  if ! node_pid_alive dockerd; then
    mkdir -p "$NODE_RUN" "$NODE_LOGS"
    rm -f "$NODE_DOCKER_PIDFILE"
    [[ -e /var/lib/docker ]] || { mkdir -p "$NODE_CACHE" && : > "$NODE_DOCKER_DATA_MARK"; }
    setsid dockerd --pidfile "$NODE_DOCKER_PIDFILE" --bridge=none --iptables=false \
      --ip-forward=false --ip-masq=false >> "$NODE_LOGS/dockerd.log" 2>&1 < /dev/null &
    node_log "started dockerd (pid $!, log $NODE_LOGS/dockerd.log)"
  fi
  node_wait dockerd 60 docker info || node_die "dockerd did not answer within 60s; see $NODE_LOGS/dockerd.log"
}

# node_missing <reason>: a prerequisite is missing (exit 3, the reason on stderr's last line)
node_missing() { echo "${NODE_SCRIPT:-node}: missing prerequisite: $*" >&2; exit 3; }

NODE_IPT_COMMENT="supercluster-node"
NODE_COREDNS_IMAGE="sc-coredns:$NODE_COREDNS_VERSION"
# Kernel settings kubelet, kube-proxy and the CNI bridge plugin may change; saved at the first
# bring-up, restored by node-down.sh.
NODE_SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom kernel.panic
  kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Host paths the node's programs create outside .cache/node when they are missing.
NODE_HOST_PATHS=(/var/log/containers /var/run/netns /run/containerd /var/lib/kubelet /etc/cni /var/lib/cni
  /var/lib/docker /var/run/docker /run/docker)

# node_save_host_state: record what node-down.sh must restore (first bring-up after a teardown).
node_save_host_state() {
  local s="$NODE_DIR/saved" k ipt
  mkdir -p "$s"
  : > "$s/sysctl"
  for k in "${NODE_SYSCTLS[@]}"; do
    [[ -e "/proc/sys/${k//.//}" ]] && echo "$k=$(cat "/proc/sys/${k//.//}")" >> "$s/sysctl"
  done
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" > /dev/null || continue
    "$ipt-save" 2> /dev/null | awk '/^\*/ { t = substr($0, 2) } /^:/ { print t, substr($1, 2) }' > "$s/$ipt.chains" || true
  done
  if command -v nft > /dev/null; then nft list tables > "$s/nft.tables" 2> /dev/null || true; fi
  ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' > "$s/links"
  : > "$s/paths"
  for k in "${NODE_HOST_PATHS[@]}"; do
    # Docker's run directories belong to the dockerd this project started, if it runs already
    # (build-image.sh before node-up.sh); /var/lib/docker is an image cache (see --purge)
    # (its shims make /run/containerd too)
    [[ "$k" == *docker* || "$k" == /run/containerd ]] && [[ "$k" != /var/lib/docker ]] \
      && node_pid_alive dockerd && continue
    [[ -e "$k" ]] && echo "$k" >> "$s/paths"
  done
  ls /var/run/netns 2> /dev/null > "$s/netns" || : > "$s/netns"
}

# node_scratch_image <ref> <static binary> <path in image>: a one-binary image FROM scratch,
# built with the Docker engine when missing or when the binary changed.
node_scratch_image() {
  local ref="$1" binary="$2" path="$3" sum ctx
  sum="$(sha256sum "$binary" | cut -c1-16)"
  if [[ "$(docker image inspect -f '{{index .Config.Labels "dev.supercluster.binary"}}' "$ref" 2> /dev/null)" == "$sum" ]]; then
    return 0
  fi
  ctx="$(mktemp -d)"
  cp "$binary" "$ctx/bin"
  printf '%s\n' "FROM scratch" "COPY bin $path" "LABEL dev.supercluster.binary=$sum" \
    "USER 65532:65532" "ENTRYPOINT [\"$path\"]" > "$ctx/Dockerfile"
  docker build -q -t "$ref" "$ctx" > /dev/null || { rm -rf "$ctx"; node_die "docker build of $ref failed"; }
  rm -rf "$ctx"
  node_log "built image $ref"
}

# node_import_image <ref>: load an image from the Docker engine into the node's containerd
# (namespace k8s.io) unless containerd already holds that very image (same image id).
node_import_image() {
  local ref="$1" id stamp_dir="$NODE_DIR/containerd/imported" stamp
  id="$(docker image inspect -f '{{.Id}}' "$ref" 2> /dev/null)" || node_die "no image $ref in the Docker engine"
  stamp="$stamp_dir/$(printf '%s' "$ref" | tr '/:@' '___')"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$id" ]] \
    && [[ -n "$(ctr --address "$NODE_CONTAINERD_SOCK" -n k8s.io images ls -q "name==$(node_full_ref "$ref")" 2> /dev/null)" ]]; then
    return 0
  fi
  docker save "$ref" | ctr --address "$NODE_CONTAINERD_SOCK" -n k8s.io images import - > /dev/null \
    || node_die "importing $ref into containerd failed"
  mkdir -p "$stamp_dir"
  echo "$id" > "$stamp"
  node_log "imported $ref into containerd"
}

# node_full_ref <ref>: the name containerd gives an image (docker.io/library/ for short names)
node_full_ref() {
  local ref="$1" first="${1%%/*}"
  if [[ "$ref" != */* ]]; then
    ref="docker.io/library/$ref"
  elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then
    ref="docker.io/$ref"
  fi
  [[ "${ref##*/}" == *:* || "$ref" == *@* ]] || ref="$ref:latest"
  echo "$ref"
}

# node_coredns_manifest: CoreDNS for cluster names only (no forwarders: nothing leaves the node)
node_coredns_manifest() {
  sed -e "s#@DNS_IP@#$NODE_DNS_IP#g" -e "s#@IMAGE@#$NODE_COREDNS_IMAGE#g" "$NODE_REPO/hack/node/coredns.yaml"
}
