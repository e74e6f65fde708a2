#!/usr/bin/env bash
# Starts a real single-node Kubernetes on this host (no kind, no registry needed):
#   Debian's containerd (standalone: own root, state, socket), runc and CNI plugins; etcd,
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (iptables) built
#   from Go modules at the Kubernetes version the envtest tier pins; CoreDNS (cluster names only).
#   usage: hack/node-up.sh [--no-image] [--timeout SECONDS]
#     --no-image   do not build/import the project image (hack/build-image.sh) after bring-up
# Idempotent: a node that is up is checked and left running. Missing Debian packages are
# installed with apt-get; binaries are cached in .cache/bin, so a second bring-up takes seconds.
# Layout: the API server binds $SC_NODE_API_IP (10.201.255.1) on a bridge without ports (scapi0),
# pods live on the CNI bridge sccni0 (10.200.0.0/24), services in 10.201.0.0/20. Every process
# started is recorded by pid in .cache/node/run/; hack/node-down.sh undoes everything, and this
# script calls it itself when a step fails (unless SC_NODE_KEEP=1).
# Output: writes .cache/node/kubeconfig and .cache/node/env (KUBECONFIG=..., IMAGE=...) and prints
# `KUBECONFIG=<path>` as the last line. Exit codes: 0 up, 1 failed, 3 a prerequisite is missing.
set -euo pipefail
export NODE_SCRIPT=node-up
# shellcheck source=hack/node/lib.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/node/lib.sh"
# shellcheck source=hack/node/pki.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/node/pki.sh"

with_image=1
timeout="${SC_NODE_TIMEOUT:-180}"
while (($#)); do
  case "$1" in
    --no-image) with_image=0 ;;
    --timeout) timeout="${2:?--timeout needs seconds}"; shift ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) node_die "unknown argument: $1 (try --help)" ;;
  esac
  shift
done
[[ "$timeout" =~ ^[0-9]+$ ]] || node_die "--timeout must be a number of seconds, got '$timeout'"
t_all="$(node_now)"

# ---------------------------------------------------------------- prerequisites
[[ "$(uname -s)" == Linux ]] || node_missing "a Linux host is needed (this is $(uname -s))"
((EUID == 0)) || node_missing "must run as root (kubelet, containerd, iptables, mounts)"
[[ -d /sys/fs/cgroup ]] || node_missing "no /sys/fs/cgroup"

node_lock

# command -> Debian package that provides it
declare -A pkg_of=(
  [dockerd]=docker.io [containerd]=containerd [ctr]=containerd [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins [debootstrap]=debootstrap
  [iptables]=iptables [ip6tables]=iptables [conntrack]=conntrack [socat]=socat [gcc]=gcc
  [openssl]=openssl [ip]=iproute2 [findmnt]=util-linux [nft]=nftables
)
missing_pkgs=()
for c in "${!pkg_of[@]}"; do
  if [[ "$c" == /* ]]; then [[ -e "$c" ]] && continue; else command -v "$c" > /dev/null && continue; fi
  [[ " ${missing_pkgs[*]} " == *" ${pkg_of[$c]} "* ]] || missing_pkgs+=("${pkg_of[$c]}")
done
[[ -f /usr/lib/x86_64-linux-gnu/libc.a || -f /usr/lib/aarch64-linux-gnu/libc.a ]] || missing_pkgs+=(libc6-dev)
if ((${#missing_pkgs[@]})); then
  command -v apt-get > /dev/null || node_missing "missing packages ${missing_pkgs[*]} and no apt-get to install them"
  node_log "installing Debian packages: ${missing_pkgs[*]}"
  t="$(node_now)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing_pkgs[@]}" > "$NODE_CACHE/apt.log" 2>&1; then
    apt-get update -q >> "$NODE_CACHE/apt.log" 2>&1 || true
    apt-get install -y -q --no-install-recommends "${missing_pkgs[@]}" >> "$NODE_CACHE/apt.log" 2>&1 \
      || node_missing "apt-get install ${missing_pkgs[*]} failed (see $NODE_CACHE/apt.log)"
  fi
  node_log "installed packages in $(node_elapsed "$t")"
fi

# ---------------------------------------------------------------- binaries (cached)
bash "$NODE_REPO/hack/envtest.sh" >&2 || node_die "hack/envtest.sh failed"
bash "$NODE_REPO/hack/node/build.sh" >&2 || node_die "hack/node/build.sh failed"
export PATH="$NODE_BIN:$PATH"

# ---------------------------------------------------------------- already up?
kubectl_() { kubectl --kubeconfig "$NODE_KUBECONFIG" "$@"; }
node_is_up() {
  local p
  for p in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    node_pid_alive "$p" || return 1
  done
  [[ "$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2> /dev/null)" == True ]] \
    && [[ "$(kubectl_ -n kube-system get deploy coredns -o jsonpath='{.status.readyReplicas}' 2> /dev/null)" == 1 ]]
}

finish() {
  local image=""
  if ((with_image)); then
    image="$(bash "$NODE_REPO/hack/build-image.sh" | tail -n1)" || node_die "hack/build-image.sh failed"
  fi
  {
    echo "KUBECONFIG=$NODE_KUBECONFIG"
    echo "IMAGE=${image:-supercluster:dev}"
    echo "UP=hack/node-up.sh"
    echo "DOWN=hack/node-down.sh"
    echo "CONTAINERD_ADDRESS=$NODE_CONTAINERD_SOCK"
  } > "$NODE_DIR/env"
  node_log "node $NODE_NAME up in $(node_elapsed "$t_all"); kubeconfig $NODE_KUBECONFIG"
  echo "KUBECONFIG=$NODE_KUBECONFIG"
  exit 0
}

if [[ -f "$NODE_KUBECONFIG" ]] && node_is_up; then
  node_log "already up"
  finish
fi

# From here on a failure tears the half-started node down again.
# shellcheck disable=SC2329 # invoked by the EXIT trap
on_fail() {
  local rc=$?
  ((rc == 0)) && return 0
  node_log "bring-up failed (exit $rc); last lines of the started daemons' logs in $NODE_LOGS:"
  local f
  for f in "$NODE_RUN"/*.pid; do
    f="$NODE_LOGS/$(basename "$f" .pid).log"
    [[ -f "$f" ]] || continue
    echo "----- $(basename "$f")" >&2
    grep -v 'FLAG: --' "$f" | tail -n 8 >&2
  done
  if [[ "${SC_NODE_KEEP:-0}" != 1 ]]; then
    node_log "tearing down (SC_NODE_KEEP=1 keeps the half-started node for debugging)"
    bash "$NODE_REPO/hack/node-down.sh" >&2 || true
  fi
  exit "$rc"
}
trap on_fail EXIT

mkdir -p "$NODE_RUN" "$NODE_LOGS" "$NODE_DIR/saved"
if [[ ! -f "$NODE_DIR/saved/done" ]]; then
  # Fresh start: what the host looked like, so that node-down.sh restores exactly that.
  node_save_host_state
  : > "$NODE_DIR/saved/done"
  for f in "$NODE_LOGS"/*.log; do [[ -f "$f" ]] && : > "$f"; done
fi

# ---------------------------------------------------------------- network
if ! ip link show "$NODE_API_BRIDGE" > /dev/null 2>&1; then
  ip link add "$NODE_API_BRIDGE" type bridge
fi
ip link set "$NODE_API_BRIDGE" up
ip -4 addr show dev "$NODE_API_BRIDGE" | grep -q " $NODE_API_IP/32 " \
  || ip addr add "$NODE_API_IP/32" dev "$NODE_API_BRIDGE"
for ipt in iptables ip6tables; do
  for dir in -i -o; do
    "$ipt" -w -C FORWARD "$dir" "$NODE_CNI_BRIDGE" -m comment --comment "$NODE_IPT_COMMENT" -j ACCEPT 2> /dev/null \
      || "$ipt" -w -I FORWARD "$dir" "$NODE_CNI_BRIDGE" -m comment --comment "$NODE_IPT_COMMENT" -j ACCEPT
  done
done

mkdir -p "$NODE_DIR/cni/net.d" "$NODE_DIR/cni/ipam"
cat > "$NODE_DIR/cni/net.d/10-sc-pods.conflist" << EOF
{
  "cniVersion": "0.4.0",
  "name": "sc-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$NODE_DIR/cni/ipam"
      }
    }
  ]
}
EOF

# ---------------------------------------------------------------- PKI and kubeconfigs
pki="$NODE_DIR/pki"
if [[ ! -f "$pki/tokens.csv" ]]; then
  node_make_pki "$pki"
fi
node_write_kubeconfigs "$pki"

# ---------------------------------------------------------------- images the node needs
node_docker_up
node_scratch_image "$NODE_PAUSE_IMAGE" "$NODE_BIN/pause" /pause
node_scratch_image "$NODE_COREDNS_IMAGE" "$NODE_BIN/coredns" /coredns

# ---------------------------------------------------------------- containerd
cd_root="$NODE_DIR/containerd"
mkdir -p "$cd_root/root" "$cd_root/state" "$cd_root/opt" "$cd_root/runc"
cat > "$cd_root/config.toml" << EOF
version = 2
root = "$cd_root/root"
state = "$cd_root/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$NODE_CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$cd_root/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$NODE_PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$cd_root/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
node_start containerd containerd --config "$cd_root/config.toml"
node_wait containerd 30 ctr --address "$NODE_CONTAINERD_SOCK" version \
  || node_die "containerd did not answer on $NODE_CONTAINERD_SOCK"
node_import_image "$NODE_PAUSE_IMAGE"
node_import_image "$NODE_COREDNS_IMAGE"

# ---------------------------------------------------------------- etcd + kube-apiserver
node_start etcd etcd --name sc-node --data-dir "$NODE_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$NODE_ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$NODE_ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$NODE_ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$NODE_ETCD_PEER_PORT" \
  --initial-cluster "sc-node=http://127.0.0.1:$NODE_ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level warn
node_start kube-apiserver kube-apiserver \
  --etcd-servers "http://127.0.0.1:$NODE_ETCD_PORT" \
  --bind-address "$NODE_API_IP" --advertise-address "$NODE_API_IP" --secure-port "$NODE_API_PORT" \
  --service-cluster-ip-range "$NODE_SERVICE_CIDR" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$pki/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --profiling=false --v 1
node_wait kube-apiserver "$timeout" kubectl_ get --raw /readyz \
  || node_die "kube-apiserver not ready (see $NODE_LOGS/kube-apiserver.log)"

# ---------------------------------------------------------------- control plane + node
node_start kube-controller-manager kube-controller-manager \
  --kubeconfig "$NODE_DIR/kube-controller-manager.kubeconfig" \
  --bind-address "$NODE_API_IP" --leader-elect=false \
  --service-cluster-ip-range "$NODE_SERVICE_CIDR" --cluster-cidr "$NODE_POD_CIDR" \
  --root-ca-file "$pki/ca.crt" --service-account-private-key-file "$pki/sa.key" \
  --use-service-account-credentials=true --controllers '*,-bootstrapsigner,-tokencleaner' \
  --profiling=false --v 1
node_start kube-scheduler kube-scheduler --kubeconfig "$NODE_DIR/kube-scheduler.kubeconfig" \
  --bind-address "$NODE_API_IP" --leader-elect=false --profiling=false --v 1

mkdir -p "$NODE_DIR/kubelet" "$NODE_DIR/pod-logs"
cat > "$NODE_DIR/kubelet-config.yaml" << EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$NODE_CONTAINERD_SOCK
address: $NODE_API_IP
healthzBindAddress: $NODE_API_IP
readOnlyPort: 0
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS: [$NODE_DNS_IP]
podLogsDir: $NODE_DIR/pod-logs
protectKernelDefaults: false
makeIPTablesUtilChains: false
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
EOF
node_start kubelet kubelet --config "$NODE_DIR/kubelet-config.yaml" \
  --kubeconfig "$NODE_DIR/kubelet.kubeconfig" --root-dir "$NODE_DIR/kubelet" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_API_IP" --v 1

cat > "$NODE_DIR/kube-proxy-config.yaml" << EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $NODE_POD_CIDR
clientConnection: {kubeconfig: $NODE_DIR/kube-proxy.kubeconfig}
bindAddress: $NODE_API_IP
healthzBindAddress: $NODE_API_IP:10256
metricsBindAddress: $NODE_API_IP:10249
iptables: {localhostNodePorts: false}
nodePortAddresses: [primary]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
node_start kube-proxy kube-proxy --config "$NODE_DIR/kube-proxy-config.yaml" --v 1

node_wait "node $NODE_NAME" "$timeout" kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout 5s \
  || node_die "node $NODE_NAME not Ready (see $NODE_LOGS/kubelet.log)"
node_wait "service account default/default" "$timeout" kubectl_ -n default get serviceaccount default \
  || node_die "no default service account (see $NODE_LOGS/kube-controller-manager.log)"

# ---------------------------------------------------------------- CoreDNS
node_coredns_manifest | kubectl_ apply -f - > /dev/null || node_die "applying the CoreDNS manifest failed"
kubectl_ -n kube-system rollout status deployment/coredns --timeout "${timeout}s" > /dev/null \
  || node_die "CoreDNS not Ready within ${timeout}s"
node_log "CoreDNS ready"

trap - EXIT
finish
