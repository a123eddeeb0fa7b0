# A project image whose `pip install` goes through the build agent's
# wheelmesh node. Nothing is cached in the image or in a cache mount: the node
# holds the wheels, for every build on this agent and, through the cluster,
# for every agent. Build it with BuildKit on an agent that runs a node:
#
#   on the host network (the node on the agent's 127.0.0.1:7390):
#     DOCKER_BUILDKIT=1 docker build --network host \
#       --build-arg PIP_INDEX_URL=http://127.0.0.1:7390/simple/ -t app .
#
#   on Docker's default bridge (the node published on the bridge's gateway,
#   e.g. docker run -p 172.17.0.1:7390:7390 ...; pip wants --trusted-host
#   for plain HTTP anywhere but localhost):
#     DOCKER_BUILDKIT=1 docker build \
#       --build-arg PIP_INDEX_URL=http://172.17.0.1:7390/simple/ \
#       --build-arg PIP_TRUSTED_HOST=172.17.0.1 -t app .
#
# `docker build --network host` applies to every step; `RUN --network=host`
# needs a `# syntax=` frontend image and `--allow network.host` (buildx), so
# it is not used here. BASE is any image with pip (python:3.11-slim).
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG PIP_INDEX_URL=http://127.0.0.1:7390/simple/
ARG PIP_TRUSTED_HOST=
WORKDIR /app
COPY requirements.txt .
RUN PIP_INDEX_URL="$PIP_INDEX_URL" PIP_TRUSTED_HOST="$PIP_TRUSTED_HOST" \
    pip install --no-cache-dir --retries 2 --timeout 60 -r requirements.txt
COPY . .
