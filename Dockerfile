# syntax=docker/dockerfile:1
# kitex-etcd-operator: a small image, no compilers, non-root, dependencies
# installed from a lock file with hashes.
#
# BASE_IMAGE: any Debian-like image with python3 >= 3.11 and its venv module.
# The default is the official Python slim image, pinned by digest; `make image`
# builds on a local Debian base instead when no registry can be reached
# (scripts/build-image.sh).
ARG BASE_IMAGE=docker.io/library/python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

# --- build: the wheel and its locked dependencies, in a venv ---------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/ ./requirements/
# Every package is pinned and its hash checked (--require-hashes); --no-deps
# makes a package missing from the lock an error instead of a download.
# The optional build secret pip-ca: a CA bundle for a TLS-inspecting proxy
# between the build and PyPI (scripts/build-image.sh passes the host's); it is
# mounted for this step only and never stored in a layer.
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && python3 -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --no-deps -r requirements/build.lock \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: \
        -r requirements/image.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation -w /dist . \
 && /opt/venv/bin/pip install --no-deps --no-index /dist/kitex_etcd_operator-*.whl \
 && /opt/venv/bin/python -m pip uninstall -y -q pip setuptools
# The user the operator runs as, for the runtime stage (same base, so the same
# files): kopf asks for the user name (getpass), which needs a passwd entry.
RUN echo 'operator:x:10001:10001:kitex-etcd-operator:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'operator:x:10001:' >> /etc/group

# --- runtime: the base and the venv, nothing else --------------------------------
FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kitex-etcd-operator" \
      org.opencontainers.image.description="Registers ready Kubernetes pods as Kitex instances in etcd" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
COPY --from=build /etc/passwd /etc/group /etc/
# Numeric, so that it works on any base (no passwd entry needed) and Kubernetes'
# runAsNonRoot can check it.
USER 10001:10001
# /healthz, /readyz and /metrics (--health-port)
EXPOSE 8080
ENTRYPOINT ["kitex-etcd-operator"]
CMD ["run"]
