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

# _node_spawn <log> <command...>: run a daemon in its own session, in the background. It must not
# inherit the lock of node_lock, or it would hold it for as long as it runs.
_node_spawn() {
  local log="$1"
  shift
  if [[ -n "${NODE_LOCK_FD:-}" ]]; then
    setsid "$@" >> "$log" 2>&1 < /dev/null {NODE_LOCK_FD}>&- &
  else
    setsid "$@" >> "$log" 2>&1 < /dev/null &
  fi
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
  _node_spawn "$NODE_LOGS/$name.log" "$@"
  echo $! > "$NODE_RUN/$name.pid"
  node_log "started $name (pid $!, log $NODE_LOGS/$name.log)"
}

# node_stop [-t timeout s] <name>...: TERM the recorded pids together, KILL what is left after
# the timeout (default 20 s), forget them. Stopping in parallel keeps a teardown short.
node_stop() {
  local timeout=20 name f pid i t left
  local -A _stop_pids=()
  if [[ "${1:-}" == -t ]]; then
    timeout="$2"
    shift 2
  fi
  t="$(node_now)"
  for name in "$@"; do
    f="$NODE_RUN/$name.pid"
    [[ -f "$f" ]] || continue
    pid="$(cat "$f")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2> /dev/null; then
      kill -TERM "$pid" 2> /dev/null && _stop_pids[$name]="$pid"
    fi
    rm -f "$f"
  done
  ((${#_stop_pids[@]})) || return 0
  for ((i = 0; i < timeout * 10; i++)); do
    left=0
    for name in "${!_stop_pids[@]}"; do kill -0 "${_stop_pids[$name]}" 2> /dev/null && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for name in "${!_stop_pids[@]}"; do
    if kill -0 "${_stop_pids[$name]}" 2> /dev/null; then
      node_log "$name (pid ${_stop_pids[$name]}) did not stop in ${timeout}s: KILL"
      kill -KILL "${_stop_pids[$name]}" 2> /dev/null || true
    fi
  done
  node_log "stopped ${!_stop_pids[*]} in $(node_elapsed "$t")"
}

# node_adopt: record pid files again for this node's daemons that run without one (a teardown
# that raced a bring-up, a deleted .cache/node/run): a daemon is this node's when its program is
# one node-up.sh starts and its command line names .cache/node, where all its files are.
node_adopt() {
  local d pid argv0 cmd name
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    cmd="$({ tr '\0' ' ' < "$d/cmdline"; } 2> /dev/null)" || continue
    [[ "$cmd" == *"$NODE_DIR/"* ]] || continue
    argv0="${cmd%% *}"
    name="${argv0##*/}"
    case "$name" in
      dockerd | containerd | etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy) ;;
      *) continue ;;
    esac
    node_pid_alive "$name" && [[ "$(cat "$NODE_RUN/$name.pid")" == "$pid" ]] && continue
    if node_pid_alive "$name"; then
      node_log "two $name processes of this node: $(cat "$NODE_RUN/$name.pid") and $pid; stopping $pid"
      kill -TERM "$pid" 2> /dev/null || true
      continue
    fi
    mkdir -p "$NODE_RUN"
    echo "$pid" > "$NODE_RUN/$name.pid"
    node_log "found $name (pid $pid) without its pid file"
  done
}

# node_wait <what> <timeout s> <command...>: run the command until it succeeds. Gives up at once
# when a daemon this node started has exited (waiting longer cannot help), naming it and its log.
node_wait() {
  local what="$1" timeout="$2" deadline f
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" > /dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      node_log "gave up waiting for $what after ${timeout}s"
      return 1
    fi
    for f in "$NODE_RUN"/*.pid; do
      [[ -f "$f" ]] || continue
      f="${f##*/}"
      f="${f%.pid}"
      [[ "$f" == dockerd ]] && continue # writes its own pid file when it has started
      if ! node_pid_alive "$f"; then
        node_log "$f exited while waiting for $what; last lines of $NODE_LOGS/$f.log:"
        grep -v 'FLAG: --' "$NODE_LOGS/$f.log" 2> /dev/null | tail -n 5 >&2
        return 1
      fi
    done
    sleep 0.5
  done
  node_log "$what ready"
}

# node_lock: one node-up / node-down / image import at a time (several test runs may share the
# machine). Held until the script exits; a script called by one that holds it (node-up calling
# node-down after a failure, or build-image) does not take it again.
node_lock() {
  [[ "${SC_NODE_LOCKED:-}" == "$NODE_CACHE" ]] && return 0
  mkdir -p "$NODE_CACHE"
  exec {NODE_LOCK_FD}> "$NODE_CACHE/node.lock"
  if ! flock -n "$NODE_LOCK_FD"; then
    node_log "waiting for another node-up/node-down/build-image to finish (lock $NODE_CACHE/node.lock)"
    flock -w "${SC_NODE_LOCK_TIMEOUT:-1800}" "$NODE_LOCK_FD" \
      || node_die "another node-up/node-down still holds $NODE_CACHE/node.lock after ${SC_NODE_LOCK_TIMEOUT:-1800}s"
  fi
  export SC_NODE_LOCKED="$NODE_CACHE"
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
    # run directories it (and its shims) will create, removed again when node-down.sh stops it
    for p in /run/docker /run/containerd; do [[ -e "$p" ]] || echo "$p"; done > "$NODE_RUN/dockerd.paths"
    _node_spawn "$NODE_LOGS/dockerd.log" dockerd --pidfile "$NODE_DOCKER_PIDFILE" --bridge=none \
      --iptables=false --ip-forward=false --ip-masq=false
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

# node_iptables_cleanup <saved dir>: remove the node's FORWARD ACCEPT rules and, for each family
# whose chain list <saved dir>/<iptables|ip6tables>.chains was recorded before the first bring-up,
# every chain named KUBE-*, CNI-* or DOCKER* added since, with the rules that jump to it.
node_iptables_cleanup() {
  local saved="$1" ipt dir script
  for ipt in iptables ip6tables; do
    command -v "$ipt" > /dev/null || continue
    for dir in -i -o; do
      while "$ipt" -w -D FORWARD "$dir" "$NODE_CNI_BRIDGE" -m comment --comment "$NODE_IPT_COMMENT" -j ACCEPT 2> /dev/null; do :; done
    done
    [[ -f "$saved/$ipt.chains" ]] || continue
    # One iptables-restore --noflush per family: drop every rule that jumps to a chain the node
    # added, then flush and delete those chains. Chains listed before the first bring-up stay.
    script="$("$ipt-save" 2> /dev/null | awk -v keep="$saved/$ipt.chains" '
      BEGIN { while ((getline l < keep) > 0) { split(l, a, " "); kept[a[1] " " a[2]] = 1 } }
      /^\*/ { t = substr($0, 2); tables[t] = 1; next }
      /^:/ { c = substr($1, 2); if (c ~ /^(KUBE-|CNI-|DOCKER)/ && !((t " " c) in kept)) { ours[t, c] = 1; chains[t] = chains[t] " " c }; next }
      /^-A / { rules[t] = rules[t] "\n" $0 }
      END {
        for (t in tables) {
          if (chains[t] == "") continue
          print "*" t
          n = split(rules[t], rs, "\n")
          for (i = 1; i <= n; i++) {
            if (rs[i] == "") continue
            nw = split(rs[i], w, " ")
            if ((t, w[2]) in ours) continue
            for (j = 3; j < nw; j++) if ((w[j] == "-j" || w[j] == "-g") && ((t, w[j + 1]) in ours)) { sub(/^-A /, "-D ", rs[i]); print rs[i]; break }
          }
          m = split(chains[t], cs, " ")
          for (i = 1; i <= m; i++) print "-F " cs[i]
          for (i = 1; i <= m; i++) print "-X " cs[i]
          print "COMMIT"
        }
      }')"
    if [[ -n "$script" ]]; then
      "$ipt-restore" -w --noflush <<< "$script" || node_log "$ipt-restore could not remove every chain the node added"
    fi
  done
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
