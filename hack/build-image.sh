#!/usr/bin/env bash
# Builds the project's image from the Dockerfile, unchanged, and loads it into the host node's
# containerd (namespace k8s.io) so that pods run it with imagePullPolicy IfNotPresent/Never.
#   usage: hack/build-image.sh [REF] [--tag TAG] [--no-import] [--toolbox]
#     REF          image reference (default supercluster:dev), e.g. ghcr.io/supercluster/scserver:0.1.0
#     --tag TAG    shorthand for REF=supercluster:TAG (also $TAG). A second reference is cheap (every
#                  layer is cached, it differs by a label only) and is a distinct image, which is
#                  what a rolling update to a rebuilt image needs
#     --no-import  only build, do not load into containerd
#     --toolbox    also build sc-toolbox:dev (the nats CLI from hack/install-natscli.sh on the
#                  same base), the nats-box stand-in the end-to-end scenario runs commands in
# Base image: python:3.11-slim when the engine has it or can pull it; where no registry can be
# reached, a stand-in made with debootstrap (Debian bookworm's python3 3.11, venv, pip,
# python-is-python3; the host's CA bundle is copied in at build time so that pip trusts the
# TLS-intercepting proxy; nothing of it is committed), passed as --build-arg PYTHON_IMAGE and
# built with --network host. The stand-in is cached as an image and only rebuilt when missing.
# Prints the image reference on stdout (last line).
set -euo pipefail
export NODE_SCRIPT=build-image
# shellcheck source=hack/node/lib.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/node/lib.sh"

image="${SC_IMAGE_NAME:-supercluster}:${TAG:-dev}"
import=1
toolbox=0
while (($#)); do
  case "$1" in
    --tag) image="${SC_IMAGE_NAME:-supercluster}:${2:?--tag needs a value}"; shift ;;
    --tag=*) image="${SC_IMAGE_NAME:-supercluster}:${1#--tag=}" ;;
    --no-import) import=0 ;;
    --toolbox) toolbox=1 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) node_die "unknown argument: $1 (try --help)" ;;
    *) image="$1" ;;
  esac
  shift
done
[[ "$image" =~ ^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$ ]] \
  || node_die "invalid image reference: '$image' (expected name:tag, e.g. supercluster:dev)"
standin="supercluster-base/python:3.11-bookworm"
t_all="$(node_now)"

node_docker_up

# ---------------------------------------------------------------- base image
have_image() { docker image inspect "$1" > /dev/null 2>&1; }

debian_mirror() {
  local m
  m="$(sed -nE 's#^URIs:[[:space:]]+(http[^ ]*/debian)/?$#\1#p' /etc/apt/sources.list.d/*.sources 2> /dev/null | head -n1)"
  [[ -n "$m" ]] || m="$(sed -nE 's#^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?(http[^ ]*/debian)/?[[:space:]]+bookworm[[:space:]].*#\2#p' \
    /etc/apt/sources.list 2> /dev/null | head -n1)"
  echo "${m:-http://deb.debian.org/debian}"
}

make_standin() {
  local root t ca=/etc/ssl/certs/ca-certificates.crt
  command -v debootstrap > /dev/null || node_die "debootstrap not installed (apt-get install debootstrap); needed for the stand-in base image"
  [[ -f "$ca" ]] || node_die "host CA bundle $ca missing: pip inside the build could not verify TLS"
  t="$(node_now)"
  root="$(mktemp -d "${TMPDIR:-/tmp}/sc-base.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$root'" EXIT
  node_log "making $standin with debootstrap from $(debian_mirror) (about 1-2 min)"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
    bookworm "$root" "$(debian_mirror)" > "$NODE_LOGS/debootstrap.log" 2>&1 \
    || node_die "debootstrap failed; see $NODE_LOGS/debootstrap.log"
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$standin" > /dev/null || node_die "docker import of the stand-in failed"
  rm -rf "$root"
  trap - EXIT
  node_log "made $standin in $(node_elapsed "$t")"
}

base="${SC_PYTHON_IMAGE:-}"
if [[ -z "$base" ]]; then
  if have_image python:3.11-slim; then
    base=python:3.11-slim
  elif have_image "$standin"; then
    base="$standin"
  elif timeout 60 docker pull -q python:3.11-slim > /dev/null 2>&1; then
    base=python:3.11-slim
  else
    node_log "python:3.11-slim cannot be pulled (no registry reachable): using a debootstrap stand-in"
    mkdir -p "$NODE_LOGS"
    make_standin
    base="$standin"
  fi
fi

# ---------------------------------------------------------------- project image
revision="$(git -C "$NODE_REPO" rev-parse --short HEAD 2> /dev/null || echo unknown)"
if ! git -C "$NODE_REPO" diff --quiet HEAD -- server operator pyproject.toml requirements.lock 2> /dev/null; then
  revision="$revision-dirty"
fi
t="$(node_now)"
node_log "building $image from Dockerfile on $base"
docker build -q --network host --build-arg "PYTHON_IMAGE=$base" \
  --build-arg "REVISION=$revision" --label "dev.supercluster.ref=$image" \
  -t "$image" -f "$NODE_REPO/Dockerfile" "$NODE_REPO" > /dev/null \
  || node_die "docker build of $image failed (rerun without -q: docker build --network host --build-arg PYTHON_IMAGE=$base $NODE_REPO)"
node_log "built $image in $(node_elapsed "$t")"

# ---------------------------------------------------------------- toolbox (nats CLI)
toolbox_image="sc-toolbox:dev"
if ((toolbox)); then
  bash "$NODE_REPO/hack/install-natscli.sh" > /dev/null || node_die "hack/install-natscli.sh failed"
  ctx="$(mktemp -d)"
  cp "$NODE_BIN/nats" "$ctx/nats"
  printf '%s\n' "FROM $base" "COPY nats /usr/local/bin/nats" "USER 1000:1000" \
    'CMD ["sleep", "infinity"]' > "$ctx/Dockerfile"
  docker build -q --network host -t "$toolbox_image" "$ctx" > /dev/null \
    || { rm -rf "$ctx"; node_die "docker build of $toolbox_image failed"; }
  rm -rf "$ctx"
  node_log "built $toolbox_image"
fi

# ---------------------------------------------------------------- into containerd
if ((import)); then
  node_lock
  [[ -S "$NODE_CONTAINERD_SOCK" ]] || node_die "the node's containerd socket $NODE_CONTAINERD_SOCK is missing: run hack/node-up.sh first (or pass --no-import)"
  node_import_image "$image"
  ((toolbox)) && node_import_image "$toolbox_image"
fi
node_log "done in $(node_elapsed "$t_all")"
echo "$image"
