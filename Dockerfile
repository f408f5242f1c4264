# syntax=docker/dockerfile:1
# sitrep: multi-stage build (web assets, Python wheels, slim non-root runtime).

FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server/ server/
COPY geo/ geo/
COPY feeds/ feeds/
COPY migrations/ migrations/
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SITREP_HOST=0.0.0.0 SITREP_PORT=8000 SITREP_ENV=production \
    SITREP_STATIC_DIR=/app/web/dist SITREP_STATE_DIR=/app/state
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 sitrep && useradd --system --uid 10001 --gid sitrep --home-dir /app sitrep
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --from=web /src/web/dist /app/web/dist
RUN mkdir -p /app/state && chown 10001:10001 /app/state
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s CMD curl -fsS http://127.0.0.1:8000/health || exit 1
# SITREP_JWT_SECRET must be set: the server refuses the default secret on a non-loopback address.
CMD ["sh", "-c", "sitrep migrate && exec sitrep serve"]
