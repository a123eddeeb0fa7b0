# syntax=docker/dockerfile:1
# A project image whose pip goes through the agent's wheelmesh node. Build
# with BuildKit on an agent that runs the node:
#   docker buildx build --allow network.host -f docker/build-step.Dockerfile .
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN --network=host pip install --no-cache-dir \
      --index-url http://127.0.0.1:7390/simple/ -r requirements.txt
COPY . .
