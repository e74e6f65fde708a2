#!/usr/bin/env bash
# Stops the host node that hack/node-up.sh started and leaves the machine as it was before:
#   pods removed through the CRI (crictl), then every process recorded in .cache/node/run stopped
#   by its pid; leftover container processes of the node's pod cgroups killed; mounts under
#   .cache/node and the pods' network namespaces unmounted; the bridges (scapi0, sccni0) and pod
#   veths deleted; the iptables rules and chains the node added (KUBE-*, CNI-*, DOCKER*, the
#   FORWARD ACCEPTs) removed, chains that existed before the first bring-up kept; the pods'
#   cgroups removed; kernel settings restored; host directories the node created removed.
#   usage: hack/node-down.sh [--purge]
#     --purge  also drop the caches of images: containerd's image store, the Docker engine's data
#              (/var/lib/docker, when this project's dockerd made it), the PKI and kubeconfig
# Safe to run at any time: after a successful or a half-failed bring-up, or twice. Binaries in
# .cache/bin and (without --purge) images stay, so the next bring-up takes seconds.
set -uo pipefail
export NODE_SCRIPT=node-down
# shellcheck source=hack/node/lib.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/node/lib.sh"

purge=0
for arg in "$@"; do
  case "$arg" in
    --purge) purge=1 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) node_die "unknown argument: $arg (try --help)" ;;
  esac
done
((EUID == 0)) || node_missing "must run as root"
node_lock
node_adopt
export PATH="$NODE_BIN:$PATH"
t_all="$(node_now)"
saved="$NODE_DIR/saved"
docker_paths=""
sock="$NODE_CONTAINERD_SOCK"

# ---------------------------------------------------------------- pods and processes
node_stop -t 30 kubelet
if node_pid_alive containerd && [[ -S "$sock" ]]; then
  t="$(node_now)"
  if command -v crictl > /dev/null; then
    timeout 90 crictl --runtime-endpoint "unix://$sock" --timeout 60s rmp --all --force > /dev/null 2>&1 \
      || node_log "crictl rmp failed; removing what is left with ctr"
  fi
  # whatever the CRI did not remove (or when crictl is missing)
  for id in $(ctr --address "$sock" -n k8s.io tasks ls -q 2> /dev/null); do
    ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$id" > /dev/null 2>&1 || true
    ctr --address "$sock" -n k8s.io tasks rm -f "$id" > /dev/null 2>&1 || true
  done
  for id in $(ctr --address "$sock" -n k8s.io containers ls -q 2> /dev/null); do
    ctr --address "$sock" -n k8s.io containers rm "$id" > /dev/null 2>&1 || true
  done
  node_log "pods removed in $(node_elapsed "$t")"
fi
# the API server's clients first, then the API server (it waits for etcd while shutting down)
node_stop -t 30 kube-proxy kube-scheduler kube-controller-manager containerd
node_stop -t 30 kube-apiserver
node_stop -t 30 etcd
if [[ -x "$NODE_BIN/kube-proxy" && -f "$saved/done" ]]; then
  "$NODE_BIN/kube-proxy" --cleanup > /dev/null 2>&1 || true
fi

# Processes the node's containerd left: its shims (their command line names our socket) and the
# processes in the pods' cgroups. Both exist only because this node started them.
for d in /proc/[0-9]*; do
  cmd="$({ tr '\0' ' ' < "$d/cmdline"; } 2> /dev/null)" || continue
  if [[ "$cmd" == *containerd-shim* && "$cmd" == *"$sock"* ]]; then
    kill -KILL "${d#/proc/}" 2> /dev/null && node_log "killed leftover shim ${d#/proc/}"
  fi
done
pod_cgroups() { find /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/kubepods* -depth -type d 2> /dev/null; }
for _ in 1 2 3; do
  pids="$(pod_cgroups | while read -r cg; do cat "$cg/cgroup.procs" 2> /dev/null; done | sort -u)"
  [[ -z "$pids" ]] && break
  # shellcheck disable=SC2086 # one pid per word
  kill -KILL $pids 2> /dev/null
  node_log "killed leftover pod processes: $(tr '\n' ' ' <<< "$pids")"
  sleep 0.5
done

# the Docker engine, when this project started it (one that was running before is left alone)
if node_pid_alive dockerd; then
  docker_paths="$(cat "$NODE_RUN/dockerd.paths" 2> /dev/null)"
  node_stop -t 30 dockerd
  # it leaves its default network namespace mounted, and when it did not shut down cleanly the
  # bind mount of its data root on itself
  findmnt -rn -o TARGET | grep '^/run/docker/' | sort -r | while read -r m; do
    umount "$m" 2> /dev/null || umount -l "$m" 2> /dev/null || node_log "cannot unmount $m"
  done
  if [[ "$(findmnt -n -o SOURCE /var/lib/docker 2> /dev/null)" == *"[/var/lib/docker]" ]]; then
    umount /var/lib/docker 2> /dev/null || node_log "cannot unmount /var/lib/docker"
  fi
  for p in $docker_paths; do
    [[ "$p" == /run/containerd ]] && continue # below, once the node's containerd is gone too
    [[ -e "$p" ]] && rm -rf "$p" && node_log "removed $p"
  done
fi

# ---------------------------------------------------------------- mounts
# deepest first; netns mounts of pods this node made (their names were not there before)
mounts() {
  findmnt -rn -o TARGET | while read -r m; do
    m="$(printf '%b' "$m")"
    case "$m" in
      "$NODE_DIR"/*) echo "$m" ;;
      /run/netns/cni-*) grep -qx "${m#/run/netns/}" "$saved/netns" 2> /dev/null || echo "$m" ;;
      /run/containerd/*) [[ -f "$saved/paths" ]] && ! grep -qx /run/containerd "$saved/paths" && echo "$m" ;;
    esac
  done | sort -r
}
for _ in 1 2 3; do
  left="$(mounts)"
  [[ -z "$left" ]] && break
  while read -r m; do
    umount "$m" 2> /dev/null || umount -l "$m" 2> /dev/null || node_log "cannot unmount $m"
  done <<< "$left"
done
for ns in /run/netns/cni-*; do
  [[ -e "$ns" ]] || continue
  grep -qx "${ns#/run/netns/}" "$saved/netns" 2> /dev/null || rm -f "$ns"
done

# ---------------------------------------------------------------- links
if ip link show "$NODE_CNI_BRIDGE" > /dev/null 2>&1; then
  for veth in $(ip -o link show master "$NODE_CNI_BRIDGE" | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
    ip link delete "$veth" 2> /dev/null || true
  done
fi
for l in "$NODE_CNI_BRIDGE" "$NODE_API_BRIDGE"; do
  ip link show "$l" > /dev/null 2>&1 && ip link delete "$l" && node_log "deleted link $l"
done

# ---------------------------------------------------------------- iptables
node_iptables_cleanup "$saved"

# nftables tables that iptables-nft created for the node (none existed before the first bring-up)
# and that are empty again now: an empty table still costs a lookup per packet
if command -v nft > /dev/null && [[ -f "$saved/nft.tables" ]]; then
  nft list tables 2> /dev/null | while read -r _ fam name; do
    grep -qx "table $fam $name" "$saved/nft.tables" && continue
    if ! nft -a list table "$fam" "$name" 2> /dev/null | grep '# handle' | grep -qvE '^[[:space:]]*(table|chain) '; then
      nft delete table "$fam" "$name" 2> /dev/null && node_log "deleted empty nftables table $fam $name"
    fi
  done
fi

# ---------------------------------------------------------------- cgroups
for _ in 1 2 3; do
  pod_cgroups | while read -r cg; do rmdir "$cg" 2> /dev/null; done
  [[ -z "$(pod_cgroups)" ]] && break
  sleep 0.5
done
[[ -z "$(pod_cgroups)" ]] || node_log "pod cgroups left: $(pod_cgroups | head -3 | tr '\n' ' ')"

# ---------------------------------------------------------------- kernel settings, host paths
if [[ -f "$saved/sysctl" ]]; then
  while IFS='=' read -r k v; do
    f="/proc/sys/${k//.//}"
    [[ -e "$f" && "$(cat "$f")" != "$v" ]] && echo "$v" > "$f" && node_log "restored $k=$v"
  done < "$saved/sysctl"
fi
if [[ -f "$saved/paths" ]]; then
  for p in "${NODE_HOST_PATHS[@]}"; do
    [[ -e "$p" ]] || continue
    grep -qx "$p" "$saved/paths" && continue
    case "$p" in
      /var/lib/docker) continue ;; # image cache: only with --purge, below
      /var/run/docker | /run/docker) node_pid_alive dockerd && continue ;;
    esac
    rm -rf "$p" && node_log "removed $p"
  done
fi
if [[ $'\n'"$docker_paths"$'\n' == *$'\n'/run/containerd$'\n'* && -e /run/containerd ]] \
  && ! grep -qx /run/containerd "$saved/paths" 2> /dev/null; then
  rm -rf /run/containerd && node_log "removed /run/containerd"
fi

# ---------------------------------------------------------------- node files
rm -rf "$NODE_RUN" "$NODE_DIR/etcd" "$NODE_DIR/kubelet" "$NODE_DIR/pod-logs" "$NODE_DIR/cni" \
  "$NODE_DIR/containerd/state" "$NODE_DIR/containerd/runc" "$NODE_DIR/env"
if ((purge)); then
  # only when this project's dockerd created it (hack/node/lib.sh node_docker_up) and is stopped
  if [[ -f "$NODE_DOCKER_DATA_MARK" && -d /var/lib/docker ]] && ! docker info > /dev/null 2>&1; then
    rm -rf /var/lib/docker && rm -f "$NODE_DOCKER_DATA_MARK" && node_log "removed /var/lib/docker"
  fi
  rm -rf "$NODE_DIR"
  node_log "purged $NODE_DIR"
else
  rm -rf "$saved"
fi
node_log "down in $(node_elapsed "$t_all")"
