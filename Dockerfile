# mailhostd container image. Build and run: docs/operations.md ("Container image").
#
#   docker build -t mailhostd .
#   docker run -v /etc/mailhostd:/etc/mailhostd:ro -e MAILHOSTD_CONFIG=/etc/mailhostd/mailhostd.yaml mailhostd
#
# Base: Node.js 24 on Debian 13 (trixie), slim. 24 is the LTS line with the longest support of
# the two the project allows (maintenance until April 2028; 22 ends in April 2027), and mailhostd
# needs Node >= 20.19 (package.json engines). Trixie, because it is the Debian release new
# deployments run, and the demo cluster's peer images are Debian 13's too (docker-compose.yml);
# the test suite runs every peer test against Debian 13's peers (Postfix 3.10, Dovecot 2.4,
# OpenLDAP 2.6, PostgreSQL 17) and Debian 12's (3.7, 2.3, 2.5, 15) alike. No native modules:
# every dependency is plain JavaScript or WebAssembly, so no compiler is needed in any stage, and
# the same build runs on Debian 12 unchanged: --build-arg NODE_IMAGE=node:24-bookworm-slim.
ARG NODE_IMAGE=node:24-trixie-slim

# ---- build: compile TypeScript with the dev dependencies ---------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No dependency has an install script (package-lock.json lists none); --ignore-scripts keeps it so.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- deps: production dependencies only, so the runtime image carries no compiler or test tool -
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime ------------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
WORKDIR /opt/mailhostd

# A dedicated user with fixed ids, so a bind-mounted data directory can be chowned on the host
# (chown 10001:10001 DIR) and the ids do not depend on the base image's other users.
RUN groupadd --system --gid 10001 mailhostd \
 && useradd --system --uid 10001 --gid mailhostd --home-dir /var/lib/mailhostd --no-create-home \
      --shell /usr/sbin/nologin mailhostd \
 && install -d -o mailhostd -g mailhostd -m 0750 /var/lib/mailhostd

COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
# The demo directory, served when no configuration is given (src/main.ts).
COPY fixtures/demo ./fixtures/demo

# The demo keeps its data under the package's data/ directory (its dataDir is ./data/demo):
# point that at the volume, the only place the unprivileged user may write. mailhostctl on the
# PATH for `docker exec ... mailhostctl lookup transport alice@example.org`.
RUN ln -s /var/lib/mailhostd /opt/mailhostd/data \
 && chmod 0755 dist/main.js dist/cli/mailhostctl.js \
 && ln -s /opt/mailhostd/dist/cli/mailhostctl.js /usr/local/bin/mailhostctl \
 && ln -s /opt/mailhostd/dist/main.js /usr/local/bin/mailhostd

USER mailhostd
VOLUME ["/var/lib/mailhostd"]

# The listeners' default ports (src/config/schema.ts): socketmap, tcp_table transport and
# recipient, policy, HTTP. They listen on 127.0.0.1 unless the configuration says otherwise: in
# a container give them `host: 0.0.0.0` (docker/mailhostd.yaml does).
EXPOSE 10040 10041 10042 10045 10090

# /healthz: the process is alive and its HTTP listener answers. Node's own fetch, because the
# slim image has neither curl nor wget. A configuration with the HTTP listener elsewhere sets
# MAILHOSTD_HEALTHCHECK_URL.
ENV MAILHOSTD_HEALTHCHECK_URL=http://127.0.0.1:10090/healthz
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.MAILHOSTD_HEALTHCHECK_URL, { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# The configuration comes from MAILHOSTD_CONFIG (or --config FILE as an argument); without
# either, the demo directory is served on the container's loopback only.
ENTRYPOINT ["node", "dist/main.js"]
