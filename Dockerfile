# The redline images of docker-compose.yml, both run as an unprivileged user on a read-only root:
# - target `runtime` (default): `redline exporter host|jobs`, `redline demo`, `redline pager-sink`;
# - target `console`: `redline console`, which also needs the catalogue, its rendered runbooks and the
#   generator's and the web application's dependencies (extra `console`).
FROM python:3.11.13-slim-bookworm AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/redline/bin:$PATH

WORKDIR /app
# Only what the running parts need: the package with its `exporters` extra, not the generator's
# dependencies (the catalogue's numbers they need are rendered into redline/telemetry/contract.py).
COPY pyproject.toml README.md ./
COPY redline/ redline/

# Editable install: the code stays under /app, so files next to the modules (SQL, YAML) resolve as in
# a checkout. /var/lib/redline is the pager-sink's data folder (a named volume in compose).
RUN python -m venv /opt/redline \
 && /opt/redline/bin/pip install --editable '.[exporters]' \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin redline \
 && install -d -o redline -g redline /var/lib/redline

USER 10001:10001
ENTRYPOINT ["redline"]
CMD ["--help"]

FROM runtime AS console
USER 0:0
COPY thresholds/ thresholds/
COPY docs/runbooks/ docs/runbooks/
RUN /opt/redline/bin/pip install --editable '.[console]'
USER 10001:10001
