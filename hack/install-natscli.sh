#!/usr/bin/env bash
# Install the Go `nats` CLI (natscli), pinned, into ${SC_CACHE:-<repo>/.cache}/bin.
#
# Idempotent: a stamp file records the installed version; when the binary and a matching
# stamp exist, nothing is built. Used by `make natscli` (and so by `make test` / `make bench`).
#
# Environment:
#   SC_CACHE          cache root (default: <repo>/.cache); the binary goes to $SC_CACHE/bin/nats
#   NATSCLI_VERSION   override the pinned version (default below)
#   GO                go binary (default: `go` on PATH, else /usr/local/go/bin/go)
#
# The Go module and build caches are the user's defaults (~/go/pkg/mod, ~/.cache/go-build), so a
# rebuild in a fresh clone on the same machine is fast.
set -euo pipefail

# v0.4.0: the newest natscli release whose whole dependency graph the module proxy here serves
# (v0.5.0 needs orbit.go modules it refuses with 403); it builds with Go 1.26
# and has the new-style `nats bench pub|sub|service request|service serve` subcommands.
PINNED_VERSION="v0.4.0"
VERSION="${NATSCLI_VERSION:-$PINNED_VERSION}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SC_CACHE:-$REPO_ROOT/.cache}"
BIN_DIR="$CACHE/bin"
NATS_BIN="$BIN_DIR/nats"
STAMP="$BIN_DIR/.nats.version"

if [[ -x "$NATS_BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; then
    echo "natscli $VERSION already installed at $NATS_BIN"
    exit 0
fi

GO="${GO:-}"
if [[ -z "$GO" ]]; then
    if command -v go >/dev/null 2>&1; then
        GO="$(command -v go)"
    elif [[ -x /usr/local/go/bin/go ]]; then
        GO=/usr/local/go/bin/go
    else
        echo "install-natscli: no Go toolchain found (set GO=/path/to/go)" >&2
        exit 1
    fi
fi

mkdir -p "$BIN_DIR"
echo "installing natscli $VERSION into $BIN_DIR with $("$GO" version)"
start=$(date +%s)
# GOTOOLCHAIN=local: never try to download another toolchain (only the module proxy is reachable).
export GOTOOLCHAIN=local
if ! GOBIN="$BIN_DIR" "$GO" install -trimpath "github.com/nats-io/natscli/nats@$VERSION"; then
    # `go install pkg@version` also reads the module's version list to look for a deprecation
    # notice; a proxy that refuses @v/list (403) makes it fail although the version itself is
    # served. Fall back to: download that exact version (checked against the checksum database)
    # and build its `nats` package inside the module, with the module's own go.mod/go.sum.
    echo "install-natscli: 'go install' failed; building from the downloaded module instead" >&2
    mod_dir="$("$GO" mod download -json "github.com/nats-io/natscli@$VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    if [[ -z "$mod_dir" || ! -d "$mod_dir" ]]; then
        echo "install-natscli: could not download github.com/nats-io/natscli@$VERSION" >&2
        exit 1
    fi
    (cd "$mod_dir" && "$GO" build -trimpath -mod=readonly \
        -ldflags "-X main.version=$VERSION" -o "$NATS_BIN.tmp" ./nats)
    mv -f "$NATS_BIN.tmp" "$NATS_BIN"
fi
end=$(date +%s)

if ! "$NATS_BIN" --version >/dev/null 2>&1; then
    echo "install-natscli: $NATS_BIN --version failed" >&2
    exit 1
fi
printf '%s\n' "$VERSION" >"$STAMP"
echo "natscli $("$NATS_BIN" --version 2>&1) installed at $NATS_BIN in $((end - start)) s"
