"""A real kube-apiserver + etcd for tests: see apiserver.py (control plane) and fixtures.py."""
