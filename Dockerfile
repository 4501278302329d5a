# free-llm-proxy container image.
#
#   docker build -t free-llm-proxy .
#   docker run -d --name free-llm-proxy -p 8080:8080 \
#     -e OPENROUTER_API_KEY=sk-or-v1-... -e PROXY_API_KEY=some-long-team-key \
#     -v free-llm-proxy-state:/var/lib/free-llm-proxy free-llm-proxy
#
# In a container the gateway must listen on 0.0.0.0, and a non-loopback listen
# address REQUIRES a client key: without PROXY_API_KEY (or auth.client_keys in
# a mounted config) the gateway refuses to start and says why.

# ---- build ---------------------------------------------------------------
FROM rust:1-bookworm AS build
# libz-ng-sys (pulled in by pingora-core) builds zlib-ng with cmake.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# conf/ holds the model-list snapshot embedded in the binary at build time.
COPY conf ./conf
RUN cargo build --release --locked \
 && strip target/release/free-llm-proxy

# ---- runtime -------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to the upstream and the model-list source uses the
# system root store.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 free-llm-proxy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/free-llm-proxy --shell /usr/sbin/nologin free-llm-proxy \
 && install -d -o free-llm-proxy -g free-llm-proxy -m 0750 /var/lib/free-llm-proxy

COPY --from=build /src/target/release/free-llm-proxy /usr/local/bin/free-llm-proxy
COPY conf/free-llm-proxy.yaml /etc/free-llm-proxy/free-llm-proxy.yaml

# The shipped config reads these (each falls back to the built-in default):
#   FREE_LLM_PROXY_LISTEN          gateway listener; 0.0.0.0 so -p works. This
#                                  needs a client key: pass PROXY_API_KEY.
#   FREE_LLM_PROXY_METRICS_LISTEN  Prometheus listener (GET /metrics, no auth):
#                                  publish 9091 only to the scraper's network.
#   STATE_DIRECTORY                state_dir: the last good model list survives
#                                  restarts in the volume below.
# Pass at run time: OPENROUTER_API_KEY (one key or a comma-separated list) and
# PROXY_API_KEY (adds the client key named "default").
ENV FREE_LLM_PROXY_LISTEN=0.0.0.0:8080 \
    FREE_LLM_PROXY_METRICS_LISTEN=0.0.0.0:9091 \
    STATE_DIRECTORY=/var/lib/free-llm-proxy \
    RUST_LOG=info

VOLUME /var/lib/free-llm-proxy
EXPOSE 8080 9091
# Numeric, so that orchestrators can check runAsNonRoot without /etc/passwd.
USER 10001:10001

# bookworm-slim has no curl or wget: bash's /dev/tcp asks GET /health (no auth)
# on the port taken from FREE_LLM_PROXY_LISTEN and expects a 200 status line.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${FREE_LLM_PROXY_LISTEN##*:} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# SIGTERM (docker stop) is a graceful shutdown: the listener closes at once,
# in-flight requests get server.grace_period_seconds (30 s) plus
# graceful_shutdown_timeout_seconds (10 s); docker stop waits only 10 s before
# SIGKILL unless given more: docker stop -t 45 (compose: stop_grace_period: 45s).
# A zero-downtime upgrade (-u) is a systemd feature: containers are replaced
# (rolling update) instead.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/free-llm-proxy", "--config", "/etc/free-llm-proxy/free-llm-proxy.yaml"]
