#!/usr/bin/env bash
# Checks the delivery artefacts without a cluster: the chart's CRDs are the repository's,
# `helm lint --strict` with the default values and each ci/*-values.yaml, `helm template` of each
# value set, hadolint on the Dockerfile, `bash -n` + shellcheck on hack/*.sh.
# (The tests in tests/delivery do all this and more, including a real API server; this script
# is the quick manual version.) Tools come from $SC_CACHE/bin: hack/envtest.sh (helm) and
# hack/install-hadolint.sh (hadolint, shellcheck).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SC_CACHE:-$repo/.cache}"
export PATH="$cache/bin:$PATH"
chart="$repo/charts/supercluster-operator"

die() { echo "check-chart.sh: error: $*" >&2; exit 1; }
command -v helm > /dev/null || die "helm not found: run hack/envtest.sh"
if ! command -v hadolint > /dev/null || ! command -v shellcheck > /dev/null; then
  bash "$repo/hack/install-hadolint.sh"
fi

echo "check-chart.sh: CRDs"
diff -r "$repo/crds" "$chart/crds" || die "chart CRDs differ from crds/: cp crds/*.yaml $chart/crds/"

echo "check-chart.sh: helm lint + template"
helm lint --strict "$chart" > /dev/null || helm lint --strict "$chart"
helm template sco "$chart" > /dev/null
for values in "$chart"/ci/*-values.yaml; do
  helm lint --strict "$chart" -f "$values" > /dev/null || die "helm lint with $values"
  helm template sco "$chart" -f "$values" > /dev/null || die "helm template with $values"
done

echo "check-chart.sh: hadolint"
hadolint "$repo/Dockerfile"

echo "check-chart.sh: shell scripts"
for script in "$repo"/hack/*.sh; do
  bash -n "$script" || die "bash -n $script"
done
shellcheck "$repo"/hack/*.sh
echo "check-chart.sh: ok"
