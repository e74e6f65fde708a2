"""scoperator: a kopf operator that runs NATS-style superclusters of scserver on Kubernetes."""

__version__ = "0.1.0"
