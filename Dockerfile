# Two images from one repository, each stage a mirror of scripts/setup.sh's steps
# (Debian 12 packages, the npm assets, torch==2.11.0 from PyPI, a release build):
#
#   docker build --target server -t buybuddy-server .
#   docker build --target worker -t buybuddy-worker .
#   docker run -e DATABASE_URL=postgres://... -p 8080:8080 buybuddy-server
#   docker run --gpus all -e DATABASE_URL=postgres://... -e SAM3_MODEL_PATH=/models/sam3 \
#       -v "$PWD/models:/models:ro" buybuddy-worker
#
# PostgreSQL (>= 15, with pgvector) runs elsewhere (compose.yaml has a complete
# set); run `buybuddy migrate` once per release (docker run ... buybuddy-server migrate).

# ---- build: the server binary, without libtorch ------------------------------
FROM rust:1.95-bookworm AS build-server
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libclang-dev nodejs npm \
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev \
      libavfilter-dev libavdevice-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked --no-default-features --bin buybuddy

# ---- build: the worker binary, with SAM 3 on libtorch 2.11 -------------------
FROM build-server AS build-worker
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
# As scripts/setup.sh: PyPI's torch wheel carries libtorch and its CUDA 13
# libraries; .cargo/config.toml links the build through .data/libtorch.
RUN python3 -m venv .data/torch \
 && .data/torch/bin/pip install --no-cache-dir --disable-pip-version-check -r vision/python/requirements.txt \
 && ln -sfn torch/lib/python3.11/site-packages/torch .data/libtorch
RUN cargo build --release --locked --bin buybuddy

# ---- runtime base: FFmpeg's runtime libraries on slim Debian -----------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
      libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavfilter8 libavdevice59 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/buybuddy --create-home buybuddy
WORKDIR /var/lib/buybuddy
ENV BUYBUDDY_LOG_FORMAT=json

# ---- worker: libtorch 2.11 with CUDA (the host needs only the NVIDIA driver) --
FROM runtime AS worker
# torch/lib and the NVIDIA wheels beside it, in the layout their runpaths expect.
COPY --from=build-worker /src/.data/torch/lib/python3.11/site-packages/torch/lib /opt/torch/site-packages/torch/lib
COPY --from=build-worker /src/.data/torch/lib/python3.11/site-packages/nvidia /opt/torch/site-packages/nvidia
COPY --from=build-worker /src/target/release/buybuddy /usr/local/bin/buybuddy
ENV LD_LIBRARY_PATH=/opt/torch/site-packages/torch/lib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    DEVICE=auto
USER buybuddy
ENTRYPOINT ["buybuddy", "worker"]

# ---- server (last, so a plain `docker build .` gives the server) -------------
FROM runtime AS server
COPY --from=build-server /src/target/release/buybuddy /usr/local/bin/buybuddy
USER buybuddy
ENV BUYBUDDY_BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["buybuddy"]
CMD ["serve"]
