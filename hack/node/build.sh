#!/usr/bin/env bash
# Builds what the host node runs on top of hack/envtest.sh's kube-apiserver, etcd, kubectl, helm,
# into ${SC_CACHE:-<repo>/.cache}/bin:
#   kubelet, kube-proxy, kube-scheduler, kube-controller-manager
#                 `go build` from the k8s.io/kubernetes version pinned in hack/node/kube/go.mod,
#                 which must equal the one hack/envtest/go.mod pins (one Kubernetes per project)
#   coredns       `go install github.com/coredns/coredns@$SC_COREDNS_VERSION` (v1.12.4), static
#   crictl        `go install sigs.k8s.io/cri-tools/cmd/crictl@$SC_CRICTL_VERSION` (v1.34.0): the
#                 CRI client node-down.sh removes pods with (Debian has no cri-tools package)
#   pause         pause.c of the same k8s.io/kubernetes module, static, with gcc
# Each carries a stamp (.stamps/<tool>) of what it was built from, so a cached run takes a second.
# Go's module and build caches stay in their default places.
set -euo pipefail
export NODE_SCRIPT=node-build
# shellcheck source=hack/node/lib.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

go_bin="$(node_go)"
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}"
helper="$NODE_REPO/hack/node/kube"
mkdir -p "$NODE_BIN" "$NODE_STAMPS"
t_all="$(node_now)"

stamp_ok() { [[ -x "$NODE_BIN/$1" && -f "$NODE_STAMPS/$1" && "$(cat "$NODE_STAMPS/$1")" == "$2" ]]; }
write_stamp() { printf '%s' "$2" > "$NODE_STAMPS/$1"; }
hash_files() { cat "$@" | sha256sum | cut -c1-16; }

kube_version="$(module_version "$helper/go.mod" k8s.io/kubernetes)"
envtest_version="$(envtest_kube_version)"
[[ -n "$kube_version" ]] || node_die "no k8s.io/kubernetes version in $helper/go.mod"
[[ "$kube_version" == "$envtest_version" ]] \
  || node_die "hack/node/kube pins Kubernetes $kube_version but hack/envtest pins $envtest_version;" \
    "run hack/node/update-gomod.sh to follow envtest"
[[ "$kube_version" =~ ^v([0-9]+)\.([0-9]+)\. ]] || node_die "bad kubernetes version: $kube_version"
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=$kube_version -X $p.gitMajor=${BASH_REMATCH[1]}"
  ldflags+=" -X $p.gitMinor=${BASH_REMATCH[2]} -X $p.gitTreeState=clean"
  ldflags+=" -X $p.buildDate=1970-01-01T00:00:00Z"
done
kube_stamp="$kube_version $(hash_files "$helper/go.mod" "$helper/go.sum")"

# ---------------------------------------------------------------- Kubernetes components
for tool in "${NODE_KUBE_TOOLS[@]}"; do
  stamp_ok "$tool" "$kube_stamp" && continue
  node_log "building $tool $kube_version (cold: kubelet ~3 min, the others < 1 min each)"
  t="$(node_now)"
  (cd "$helper" && "$go_bin" build -trimpath -ldflags "$ldflags" -o "$NODE_BIN/$tool.tmp" \
    "k8s.io/kubernetes/cmd/$tool") || node_die "go build of $tool failed (module $helper)"
  mv -f "$NODE_BIN/$tool.tmp" "$NODE_BIN/$tool"
  write_stamp "$tool" "$kube_stamp"
  node_log "built $tool in $(node_elapsed "$t")"
done

# ---------------------------------------------------------------- CoreDNS, crictl
# go_install <tool> <module/package> <version>: a static binary (CoreDNS runs FROM scratch)
go_install() {
  local tool="$1" pkg="$2" ver="$3" t tmp
  stamp_ok "$tool" "$pkg@$ver" && return 0
  node_log "building $tool $ver (cold: coredns ~2-3 min, crictl ~1 min)"
  t="$(node_now)"
  tmp="$(mktemp -d)"
  CGO_ENABLED=0 GOBIN="$tmp" "$go_bin" install -trimpath -ldflags "-s -w" "$pkg@$ver" \
    || { rm -rf "$tmp"; node_die "go install $pkg@$ver failed"; }
  mv -f "$tmp/$tool" "$NODE_BIN/$tool"
  rm -rf "$tmp"
  write_stamp "$tool" "$pkg@$ver"
  node_log "built $tool in $(node_elapsed "$t")"
}
go_install coredns github.com/coredns/coredns "$NODE_COREDNS_VERSION"
go_install crictl sigs.k8s.io/cri-tools/cmd/crictl "$NODE_CRICTL_VERSION"

# ---------------------------------------------------------------- pause
pause_src="$(cd "$helper" && "$go_bin" list -m -f '{{.Dir}}' k8s.io/kubernetes 2> /dev/null)/build/pause/linux/pause.c"
if [[ ! -f "$pause_src" ]]; then
  (cd "$helper" && "$go_bin" mod download k8s.io/kubernetes) || node_die "cannot download k8s.io/kubernetes"
  pause_src="$(cd "$helper" && "$go_bin" list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
fi
[[ -f "$pause_src" ]] || node_die "pause.c not found at $pause_src"
pause_stamp="$kube_version $(hash_files "$pause_src")"
if ! stamp_ok pause "$pause_stamp"; then
  command -v gcc > /dev/null || node_die "gcc not found: needed for the pause binary (apt-get install gcc libc6-dev)"
  gcc -Os -Wall -Werror -static -DVERSION="$kube_version-sc" -o "$NODE_BIN/pause.tmp" "$pause_src" \
    || node_die "gcc -static of $pause_src failed (is libc6-dev installed?)"
  strip "$NODE_BIN/pause.tmp" 2> /dev/null || true
  mv -f "$NODE_BIN/pause.tmp" "$NODE_BIN/pause"
  write_stamp pause "$pause_stamp"
  node_log "built pause"
fi

for tool in "${NODE_KUBE_TOOLS[@]}"; do
  "$NODE_BIN/$tool" --version > /dev/null 2>&1 || node_die "$NODE_BIN/$tool does not run"
done
"$NODE_BIN/coredns" -version > /dev/null 2>&1 || node_die "$NODE_BIN/coredns does not run"
"$NODE_BIN/crictl" --version > /dev/null 2>&1 || node_die "$NODE_BIN/crictl does not run"
node_log "ok in $(node_elapsed "$t_all"): ${NODE_KUBE_TOOLS[*]} $kube_version, coredns $NODE_COREDNS_VERSION, crictl $NODE_CRICTL_VERSION, pause"
