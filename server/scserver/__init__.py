"""scserver: a NATS-protocol server with routes and gateways, written in Python."""

__version__ = "0.1.0"
# The NATS server version we speak as; clients and tools read it from INFO and /varz.
NATS_COMPAT_VERSION = "2.10.29"
