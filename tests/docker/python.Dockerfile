# A stand-in for the official python:3.11-slim image, which cannot be pulled
# here (no registry): Debian 12's Python 3.11 with pip in a virtual
# environment first on PATH, so `pip install` works as in the official image.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv curl \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /usr/local/python \
 && /usr/local/python/bin/pip --version
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
CMD ["python3"]
