# PushOps: the Slack bot for OneSignal. `docker build -t pushops . && docker run --env-file .env -p 3000:3000 pushops`
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY storage ./storage
RUN pip install --no-cache-dir --prefix=/install '.[postgres]'

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 pushops \
    && mkdir -p /data && chown pushops /data
COPY --from=build /install /usr/local
USER pushops
WORKDIR /home/pushops
ENV PUSHOPS_DATA_DIR=/data \
    PYTHONUNBUFFERED=1 \
    PORT=3000
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/healthz', timeout=2)" || exit 1
ENTRYPOINT ["pushops"]
CMD ["serve"]
