# energy-gateway in a container: slim, non-root, state in a volume, health from /status.
# Build:  docker build -t energy-gateway .
# Run:    docker run -d --name energy-gateway -p 8080:8080 --env-file env \
#           -v "$PWD/config.yaml:/etc/energy-gateway/config.yaml:ro" \
#           -v energy-gateway-state:/var/lib/energy-gateway energy-gateway
# The config must listen on all of the container's interfaces (gateway.host: 0.0.0.0) on port
# 8080; docs/deploy.md has the details.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY gateway ./gateway
COPY drivers ./drivers
COPY simulator ./simulator
RUN python -m venv /opt/energy-gateway \
    && /opt/energy-gateway/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && /opt/energy-gateway/bin/pip uninstall --yes pip

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/energy-gateway \
        --shell /usr/sbin/nologin energy-gateway \
    && install -d -o energy-gateway -g energy-gateway -m 0700 /var/lib/energy-gateway \
    && install -d -m 0755 /etc/energy-gateway
COPY --from=build /opt/energy-gateway /opt/energy-gateway
# data_dir defaults to $STATE_DIRECTORY (as under systemd): the volume below
ENV PATH=/opt/energy-gateway/bin:$PATH \
    STATE_DIRECTORY=/var/lib/energy-gateway \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/var/lib/energy-gateway"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/status', timeout=4).read() != b'ok')"]
ENTRYPOINT ["energy-gateway", "--log-format", "json"]
CMD ["serve", "--config", "/etc/energy-gateway/config.yaml"]
