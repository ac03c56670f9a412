# PushOps image. `docker build -t pushops .`, then see docs/operations.md (compose.yaml runs it
# with PostgreSQL). BuildKit is needed (the default builder since Docker 23).
#
# BASE: the official Python 3.11 slim image, or any Debian-based image with Python 3.11 and its
# venv module (scripts/docker-smoke builds one from Debian's packages): --build-arg BASE=...
# A proxy whose certificate pip must trust: --secret id=pip_cert,src=/path/to/ca-bundle.crt
# (a secret mount, so the bundle is in no layer).
ARG BASE=python:3.11-slim

# The dependencies pyproject.toml names (with the PostgreSQL driver), as a file: the layer that
# installs them is rebuilt only when this list or constraints.txt changes, not on every edit of
# pyproject.toml's tool settings.
FROM ${BASE} AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" > requirements.txt

FROM ${BASE} AS build
# One virtual environment, copied whole into the final stage: the same layout on every base,
# where pip --prefix lays files out as each base's Python is configured.
RUN python3 -m venv /opt/pushops
ENV PATH=/opt/pushops/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/constraints.txt
WORKDIR /src
COPY constraints.txt ./
COPY --from=requirements /src/requirements.txt ./
# pip_cert: see the top of this file.
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && pip install --quiet --upgrade pip setuptools \
    && pip install --quiet -r requirements.txt
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY storage ./storage
# The project itself: built offline with the pinned setuptools already in the environment.
RUN pip install --quiet --no-deps --no-build-isolation . \
    && pip check \
    && pushops --help > /dev/null

FROM ${BASE}
RUN useradd --create-home --uid 10001 --user-group pushops \
    && mkdir -p /data && chown pushops:pushops /data
COPY --from=build /opt/pushops /opt/pushops
USER pushops
WORKDIR /home/pushops
ENV PATH=/opt/pushops/bin:$PATH \
    PUSHOPS_DATA_DIR=/data \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=3000
# Without PUSHOPS_SECRET_KEY the key that encrypts stored OneSignal keys is generated here:
# keep /data on a volume, or every new container makes a new key and cannot read the old ones.
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=3)"]
ENTRYPOINT ["pushops"]
CMD ["serve"]
