# The Node sample app's image (lab/apps/node: real dd-trace and hot-shots, docs/apps.md#the-node-sample-app):
# Debian's `nodejs` (bookworm: Node 18) and the app's node_modules from its committed lock file.
# A separate image, so the lab image every other scenario runs does not carry Node.
#
# Built by `ecs-lab images build` as ecs-agent-lab/node-app:latest, on the lab's registry-free Debian
# base. By hand, from the repo root:
#   docker build -f docker/node-app.Dockerfile --build-arg BASE_IMAGE=debian:bookworm-slim \
#     -t ecs-agent-lab/node-app:latest .
#
# Behind an intercepting HTTPS proxy npm needs that proxy's CA: the lab's builder adds the bundle to
# the build context in memory as `ca-bundle.crt` (from PIP_CERT); only the `modules` stage sees it.
ARG BASE_IMAGE=ecs-agent-lab/debian:bookworm

# -- node: the runtime, shared by the install stage and the image ------------------------------
FROM ${BASE_IMAGE} AS node
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends nodejs ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*

# -- modules: `npm ci` of the lock file ------------------------------------------------------------
# npm (Debian's, with its few hundred node-* packages) stays in this stage; the image gets only the
# installed tree. --ignore-scripts: the tree's one install script builds hot-shots' optional
# Unix-socket transport (unix-dgram), unused here; dd-trace's native parts ship prebuilt.
FROM node AS modules
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends npm >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# package.json and the lock file only: an edit of app.js does not reinstall the modules.
COPY lab/apps/node/package.json lab/apps/node/package-lock.json ca-bundle.cr[t] /build/
RUN cd /build \
 && if [ -s ca-bundle.crt ]; then export npm_config_cafile=/build/ca-bundle.crt; fi \
 && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error \
 && test -d node_modules/dd-trace && test -d node_modules/hot-shots

# -- the image -----------------------------------------------------------------------------------
FROM node
COPY --from=modules /build/node_modules /opt/node-app/node_modules
COPY lab/apps/node/package.json lab/apps/node/app.js /opt/node-app/
WORKDIR /opt/node-app
LABEL ecs-agent-lab.image=node-app
CMD ["node", "app.js"]
