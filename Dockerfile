# syntax=docker/dockerfile:1
# One image for the controller, the CSI node plugin and (once it exists) the kubectl plugin:
#   controller:   node /app/dist/main.js [flags]                      (default CMD, non-root)
#   node plugin:  node /app/dist/delivery/node-plugin.main.js [flags] (DaemonSet runs it as root)
#   agent:        node /app/dist/delivery/agent/agent.main.js [flags] (added to pods by the webhook, ADR 0250)
#   CLI:          kubectl-secretbinder [args] (node /app/dist/cli/main.js; also the npm bin entry)
# Checked statically by test/integration/packaging/dockerfile.test.ts (no Docker engine in CI).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# npm 11 refuses `npm ci` on lock files without other platforms' optional packages
# (npm/cli#8805); the project pins npm 10 (test/harness/install/env.sh).
RUN npm install --global npm@10.9.9 && npm --version
COPY package.json package-lock.json ./
# No install scripts: the only production one (protobufjs) just prints version-scheme warnings;
# the build needs tsc only, not @swc/core's native binding.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# tsc emits JavaScript only: the CSI protos are loaded next to their module at run time.
RUN npm run build \
 && cp src/delivery/csi/*.proto dist/delivery/csi/ \
 && npm prune --omit=dev --no-audit --no-fund --ignore-scripts \
 && rm -rf node_modules/.cache

FROM ${NODE_IMAGE}
# util-linux's mount/umount (tmpfs mounts of the node plugin) are part of the Debian base; fail the
# build if a base image ever drops them.
RUN command -v mount && command -v umount && mount --version
# A 1 MiB young generation (V8's default grows to 16 MiB per semi-space): ~16 MiB less RSS at idle
# for a few more, shorter scavenges (ADR 0200).
ENV NODE_ENV=production \
    NODE_OPTIONS="--enable-source-maps --max-semi-space-size=1"
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY crds ./crds
COPY README.md ./
# The kubectl plugin on PATH (`kubectl secretbinder …` finds kubectl-secretbinder).
RUN chmod 0755 /app/dist/cli/main.js && ln -s /app/dist/cli/main.js /usr/local/bin/kubectl-secretbinder
# Non-root by default (the controller); files are root-owned and read-only for this user, so a
# read-only root file system works. The node plugin's DaemonSet sets runAsUser 0 + privileged.
USER 65532:65532
ENTRYPOINT ["node"]
CMD ["/app/dist/main.js"]
