# The Permanence app image (also runs the scheduler: `permanence scheduler`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Locked dependencies first: this layer is reused while only the code changes.
COPY requirements-prod.lock ./
RUN pip install -r requirements-prod.lock

COPY pyproject.toml README.md ./
COPY routing ./routing
COPY callers ./callers
COPY volunteers ./volunteers
COPY web ./web
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /data permanence \
    && mkdir -p /data && chown permanence /data

USER permanence
ENV DATA_DIR=/data HOST=0.0.0.0 PORT=8000
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"

# Migrates the database, then serves; WORKERS sets the number of app processes.
CMD ["permanence", "serve"]
