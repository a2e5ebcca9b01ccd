# csi-lab driver image.
#
# Two stages: the first installs every npm dependency and compiles the
# TypeScript; the second is a slim Node 24 runtime with only production
# dependencies, the compiled code, and the tools the node plugin calls:
#   mount/umount (util-linux, mount)   mount(8) for what needs its helpers
#   nfs-common                         mount.nfs for the shared backend
#   xfsprogs, e2fsprogs                mkfs/quota tools for the capacity modes
# The driver must run as root in a privileged container to mount.
#
#   docker build -t csi-lab:dev .
#   docker run --rm csi-lab:dev --version

# Node 24: a long-term-support line maintained until April 2028. (Node 20,
# which this project's CI and benchmarks run on, reached its end of life in
# April 2026; the driver runs on either, and the test suite passes on both.
# docs/performance.md, "The runtime", has the difference in figures.)
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs its install script (koffi ships
# prebuilt binaries in its package); our own "prepare" step is run below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends util-linux mount nfs-common xfsprogs e2fsprogs \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/csi-lab
ENV NODE_ENV=production
# --use-openssl-ca: TLS would trust OpenSSL's own CA store, not the ~140
# root certificates compiled into node. The driver opens no TLS connection,
# but Node 24 parses those certificates on a thread of its own as soon as
# node:tls is loaded, and keeps them: 1.5 MiB of RSS and CPU at every start
# (docs/performance.md, item 22). The driver itself no longer loads node:tls
# (its HTTP/2 is its own, item 23); the flag stays for anything that might.
# A DaemonSet that sets NODE_OPTIONS itself should keep this flag in it.
ENV NODE_OPTIONS=--use-openssl-ca
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
RUN ln -s /opt/csi-lab/bin/csi-lab.js /usr/local/bin/csi-lab \
 && csi-lab --version
LABEL org.opencontainers.image.title="csi-lab" \
      org.opencontainers.image.description="A CSI (v1.12) driver in TypeScript" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["csi-lab"]
CMD ["driver"]
