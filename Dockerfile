# syntax=docker/dockerfile:1
# stepflow operator image.
#   docker build -t ghcr.io/stepflow/stepflow-operator:0.1.0 .
# The builder installs the package and its runtime dependencies (no test extras) into a
# virtualenv; the final stage copies only that virtualenv onto the same slim base.

FROM python:3.11.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# A CA bundle for pip, where HTTPS goes through a proxy only the build host trusts: given by the
# build command (`make image` passes the host's, mounted read-only), unset otherwise. Only this
# stage sees it; the image carries none of it.
ARG PIP_CERT
RUN python -m venv /opt/stepflow
COPY pyproject.toml README.md ./
COPY operator/ operator/
# A wheel first, then an install of that wheel: what ends up in the venv is exactly what a user
# would get from `pip install stepflow-operator`, without the source tree or the build tools;
# then pip and setuptools leave the virtualenv too: the operator runs without an installer.
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && /opt/stepflow/bin/pip install --no-cache-dir /wheels/*.whl \
    && /opt/stepflow/bin/pip uninstall --yes --quiet pip setuptools \
    && /opt/stepflow/bin/stepflow --help > /dev/null

FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="stepflow-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs stepflow Workflows as Jobs" \
      org.opencontainers.image.source="https://github.com/stepflow/stepflow" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/stepflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=builder /opt/stepflow /opt/stepflow
# Numeric non-root user (the "nonroot" uid of distroless images); Kubernetes' runAsNonRoot can
# verify a numeric user without looking it up.
USER 65532:65532
WORKDIR /tmp
# 8080: kopf liveness endpoint (/healthz); 9090: Prometheus metrics.
EXPOSE 8080 9090
ENTRYPOINT ["stepflow", "operator"]
CMD ["--all-namespaces", "--standalone", "--liveness=http://0.0.0.0:8080/healthz"]
