# syntax=docker/dockerfile:1
#
# One image for both programs of the project:
#   scserver    the NATS-protocol server (default command; the operator's StatefulSets run
#               `scserver -c /etc/scserver/scserver.conf`, so scserver must stay PID 1: no
#               entrypoint wrapper, the preStop hook signals PID 1 for lame duck mode)
#   scoperator  the kopf operator (`scoperator run ...`, as the Helm chart's Deployment does)
#
#   docker build -t ghcr.io/supercluster/scserver:0.1.0 .
#
# Dependencies are pinned by requirements.lock (a constraints file); the project itself is built
# into a wheel in the builder stage and installed into a virtualenv that the runtime stage copies.
# Linted by hadolint in tests/delivery/test_image.py.

ARG PYTHON_IMAGE=python:3.11-slim

# ------------------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Build tools pinned; the wheel is built without build isolation so that these are the ones used.
RUN python -m pip install setuptools==80.9.0 wheel==0.45.1

COPY requirements.lock pyproject.toml README.md ./
COPY server/ server/
COPY operator/ operator/

RUN python -m pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && python -m venv /opt/supercluster \
    && /opt/supercluster/bin/pip install --constraint requirements.lock /wheels/supercluster-*.whl \
    && /opt/supercluster/bin/pip check \
    && /opt/supercluster/bin/scserver --help > /dev/null \
    && /opt/supercluster/bin/scoperator --help > /dev/null \
    && /opt/supercluster/bin/python -m compileall -q /opt/supercluster/lib

# ------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z

LABEL org.opencontainers.image.title="supercluster" \
      org.opencontainers.image.description="scserver (NATS-protocol server with routes and gateways) and scoperator (kopf operator for SuperCluster/Cluster resources)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/supercluster/supercluster" \
      org.opencontainers.image.url="https://github.com/supercluster/supercluster" \
      org.opencontainers.image.documentation="https://github.com/supercluster/supercluster/tree/main/docs" \
      org.opencontainers.image.vendor="supercluster" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

# uid/gid 1000 is what the operator's pod securityContext (runAsUser/runAsGroup/fsGroup) uses.
RUN groupadd --system --gid 1000 supercluster \
    && useradd --system --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin supercluster

COPY --from=builder /opt/supercluster /opt/supercluster

ENV PATH=/opt/supercluster/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /tmp
USER 1000:1000

# client, cluster (routes), gateway, monitoring (HTTP)
EXPOSE 4222 6222 7222 8222

CMD ["scserver"]
