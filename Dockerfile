# syntax=docker/dockerfile:1
# kitex-etcd-operator: a small image, no compilers, non-root.

# --- build: the wheel and its dependencies, in a venv ---------------------------
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install .

# --- runtime: the venv only ------------------------------------------------------
FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="kitex-etcd-operator" \
      org.opencontainers.image.description="Registers ready Kubernetes pods as Kitex instances in etcd" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
RUN groupadd --gid 10001 operator && useradd --uid 10001 --gid 10001 --no-create-home \
    --shell /usr/sbin/nologin operator
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["kitex-etcd-operator"]
CMD ["run"]
