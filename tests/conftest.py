"""Project-wide pytest setup: the real Kubernetes control plane fixtures (`kube`, `namespace`)
are available to every tier that needs them (operator, delivery)."""

pytest_plugins = ["tests.kube.fixtures"]
