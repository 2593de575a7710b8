# syntax=docker/dockerfile:1
# eventshop's one image: the web, the relay, the consumers and the one-off migrate, chosen by the
# command (a Procfile process name: web, relay, inventory, orders, notifications, mailer; or
# migrate, mailcatcher). `bin/container-build` builds it here, compose.yaml runs it; see the
# "Containers" section of docs/operations.md.
#
# The base is Debian bookworm with Python 3.11 (bin/container-base makes it with debootstrap when
# no registry is reachable; elsewhere BASE_IMAGE=docker.io/library/debian:bookworm-slim with
# python3.11 and python3-venv installed, or python:3.11-slim, does as well).
ARG BASE_IMAGE=localhost/eventshop-base:bookworm
FROM ${BASE_IMAGE}

# Where pip finds packages: as the building machine does (bin/container-build passes its
# PIP_INDEX_URL / PIP_EXTRA_INDEX_URL). A network that re-signs TLS passes its CA bundle as the
# build secret `ca` (--secret id=ca,src=FILE): mounted for the install only, never in a layer.
ARG PIP_INDEX=""
ARG PIP_EXTRA_INDEX=""

ENV PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/app/bin:/opt/venv/bin:$PATH \
    VAR_DIR=/var/lib/eventshop \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    PORT=8000

RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
 && python3 -m venv /opt/venv

COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=ca,required=false \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: \
        ${PIP_INDEX:+--index-url "$PIP_INDEX"} ${PIP_EXTRA_INDEX:+--extra-index-url "$PIP_EXTRA_INDEX"} \
        -r /tmp/requirements.txt; \
    rm -f /tmp/requirements.txt; \
    rm -rf /root/.cache /tmp/pip-*

WORKDIR /app
COPY . /app
# Static files at build, with a throwaway key (collectstatic signs nothing) and a database URL
# that keeps settings out of the embedded mode: nothing is connected to, nothing is kept.
RUN set -eu; \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    env -u PROMETHEUS_MULTIPROC_DIR python manage.py collectstatic --noinput -v 0; \
    python -m compileall -q /app; \
    test ! -e "$VAR_DIR/secret_key"; \
    chown app:app "$VAR_DIR"

USER app
EXPOSE 8000
# One check for every role (bin/container-healthcheck): the web answers /healthz, a relay or a
# consumer its metrics port when METRICS_PORT is set, the mail catcher its SMTP port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["container-healthcheck"]
ENTRYPOINT ["container-entrypoint"]
CMD ["web"]
