# The server image: the `buybuddy` binary on slim Debian. It mirrors
# scripts/setup.sh: Debian 12 packages, the npm assets, a release build.
#   docker build -t buybuddy .
#   docker run -e DATABASE_URL=postgres://... -p 8080:8080 buybuddy
# PostgreSQL (>= 15, with pgvector) runs elsewhere; run `buybuddy migrate` once
# per release (docker run ... buybuddy migrate).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libclang-dev nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked --bin buybuddy

FROM debian:bookworm-slim AS server
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/buybuddy --create-home buybuddy
COPY --from=build /src/target/release/buybuddy /usr/local/bin/buybuddy
USER buybuddy
WORKDIR /var/lib/buybuddy
ENV BUYBUDDY_BIND=0.0.0.0:8080 BUYBUDDY_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["buybuddy"]
CMD ["serve"]
