# deepcall-gateway: the production image.
#
#   docker build -t deepcall-gateway:0.1.0 .
#   docker run --rm -p 8000:8000 --stop-timeout 30 \
#       -e GATEWAY_UPSTREAM_URL=https://<your brand host> deepcall-gateway:0.1.0
#
# The image is marked production and sets no GATEWAY_UPSTREAM_URL on purpose:
# it refuses to start until it is told where DeepCall is, so it never serves
# the simulator's demo data by accident (GATEWAY_UPSTREAM_URL=embedded asks
# for them by name).

# Both stages use the same base, so the venv's interpreter path stays valid.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the project's wheel and its dependencies, in a venv -------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src
# README.md is the package's long description: the build needs it.
COPY pyproject.toml README.md ./
# gateway/ includes GraphiQL's built assets (gateway/http/ide_assets): no Node stage.
COPY gateway ./gateway
# Offline (air-gapped) builds: wheels of the dependencies and of setuptools in
# ./wheelhouse, made by the image's own Python, and --build-arg PIP_NO_INDEX=1;
# pip then installs from them alone (the README says how). Otherwise the
# wheelhouse holds only its README and pip uses the index.
COPY wheelhouse ./wheelhouse
ARG PIP_NO_INDEX=0
ENV PIP_FIND_LINKS=/src/wheelhouse
# The same install as CI's: a wheel of the project, its dependencies from PyPI
# (or from the wheelhouse alone).
RUN pip install .

# ---- runtime: the venv on a clean base, no compilers, no pip cache ----------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="deepcall-gateway" \
      org.opencontainers.image.description="GraphQL gateway for DeepCall's Call Report API v2 reportCount" \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin gateway

COPY --from=build /opt/venv /opt/venv

# Nothing but /tmp is writable by the gateway's user: the base leaves /var/tmp
# world-writable too. (-xdev: the build's /proc, /sys and /dev are not the image's.)
RUN find / -xdev -perm -o+w ! -type l ! -path /tmp -exec chmod o-w {} +

# Production defaults; every GATEWAY_* is listed in docs/settings.md.
# GATEWAY_SHUTDOWN_TIMEOUT bounds how long in-flight requests get after SIGTERM:
# give the container more than GATEWAY_DRAIN_SECONDS + that before it is
# killed (docker run --stop-timeout 30; terminationGracePeriodSeconds in k8s/).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_ENV=production \
    GATEWAY_GRAPHIQL=false \
    GATEWAY_INTROSPECTION=false \
    GATEWAY_LOG_FORMAT=json \
    GATEWAY_WORKERS=1 \
    GATEWAY_DRAIN_SECONDS=0 \
    GATEWAY_SHUTDOWN_TIMEOUT=20

# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001

EXPOSE 8000

# The slim base has no curl; /healthz never touches the upstream.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]

# Exec form: the gateway is PID 1 and gets SIGTERM itself (drain, then exit 0).
CMD ["deepcall-gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
