# Supercluster: the README's commands live here.
#   make demo   sets everything up and runs the main job on the embedded default
#   make test   sets everything up and runs every test tier
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE ?= $(CURDIR)/.cache
export SC_CACHE := $(CACHE)
export PATH := $(CURDIR)/$(BIN):$(CACHE)/bin:$(PATH)

.PHONY: demo test lint format bench bench-robustness fuzz venv tools natscli envtest linters crds clean unit e2e mutate \
	node-up node-down image

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

natscli:
	@bash hack/install-natscli.sh

envtest:
	@bash hack/envtest.sh

linters:
	@bash hack/install-hadolint.sh

tools: venv natscli envtest linters

demo: venv
	$(BIN)/python -m scoperator local -f examples/supercluster.yaml --demo

test: tools
	$(BIN)/ruff check server operator tests bench fuzz
	$(BIN)/pytest -q -p no:cacheprovider tests

unit: venv
	$(BIN)/pytest -q -x tests -m "not kube and not e2e"

lint: venv
	$(BIN)/ruff check server operator tests bench fuzz
	$(BIN)/ruff format --check server operator tests bench fuzz

format: venv
	$(BIN)/ruff format server operator tests bench fuzz
	$(BIN)/ruff check --fix server operator tests bench fuzz

bench: venv natscli
	$(BIN)/python -m bench.run

# Robustness under hostile or stuck peers, scserver vs nats-server side by side (< 3 min).
bench-robustness: venv
	$(BIN)/python -m bench.bench_robustness

# Coverage-guided fuzzing (atheris): every harness in fuzz/ for FUZZ_SECONDS, one at a time,
# at the lowest priority. New corpus units go to fuzz/grown/, crashes to fuzz/artifacts/.
# A 15 s run of each is part of `make test` (tests/fuzz).
FUZZ_SECONDS ?= 600
fuzz: venv
	@set -e; for h in $$($(BIN)/python -c 'from fuzz import HARNESSES; print(*HARNESSES)'); do \
	  echo "== fuzz $$h for $(FUZZ_SECONDS)s"; \
	  nice -n 19 $(BIN)/python -m fuzz $$h -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1; \
	done

# Mutation testing of the core modules (slow; not part of CI). Report: docs/mutation.md
mutate: venv
	bash hack/mutate.sh

crds: venv
	$(BIN)/python hack/gen-crds.py

e2e: venv
	bash hack/e2e-kind.sh

# A real single-node Kubernetes on this host (root; Debian packages via apt; see hack/node-up.sh).
# `make node-up` also builds the image; the kubeconfig is .cache/node/kubeconfig.
# `make node-down` stops it and restores the host (NODE_DOWN_ARGS=--purge drops image caches).
node-up:
	bash hack/node-up.sh

node-down:
	bash hack/node-down.sh $(NODE_DOWN_ARGS)

# The project's image from the Dockerfile (IMAGE=ref, default supercluster:dev), loaded into the
# node's containerd when the node is up.
IMAGE ?= supercluster:dev
image:
	bash hack/build-image.sh $(IMAGE) $(if $(wildcard $(CACHE)/node/containerd/containerd.sock),,--no-import)

clean:
	rm -rf $(VENV) .pytest_cache
