# A stand-in for PyPI in docker/compose.yml: nginx serving a static PEP 503
# tree (simple/<project>/index.html with links to packages/<file>#sha256=...)
# mounted at /srv/index. The access log goes to stdout (`docker logs`), one
# line per request: "<status> <method> "<uri>" <bytes sent>".
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light curl \
 && rm -rf /var/lib/apt/lists/*
COPY upstream-nginx.conf /etc/nginx/nginx.conf
VOLUME ["/srv/index"]
EXPOSE 80
HEALTHCHECK --interval=5s --timeout=3s --retries=5 \
  CMD curl -fsS -o /dev/null http://127.0.0.1/healthz || exit 1
CMD ["nginx", "-g", "daemon off;"]
