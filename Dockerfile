# Stage 1: the page's browser libraries, from npm (exact versions of frontend/package-lock.json).
FROM node:20-slim AS assets
WORKDIR /src
COPY frontend/package.json frontend/package-lock.json frontend/build.mjs ./frontend/
RUN npm ci --prefix frontend --no-audit --no-fund --loglevel=error \
 && mkdir -p aura_dashboard/web/static \
 && node frontend/build.mjs

# Stage 2: build the wheel with the assets inside.
FROM python:3.11-slim AS build
WORKDIR /src
COPY setup.py setup.cfg README.md ./
COPY aura_dashboard ./aura_dashboard
COPY --from=assets /src/aura_dashboard/web/static/vendor ./aura_dashboard/web/static/vendor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Stage 3: slim runtime, non-root.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 aura && mkdir -p /app/data && chown aura /app/data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
USER aura
# Configuration by environment (or an .env file in /app); see .env.example.
ENV LOG_FILE=/app/data/dashboard.log \
    AUDIT_STORE_PATH=/app/data/audit.db \
    PYTHONUNBUFFERED=1
VOLUME ["/app/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
CMD ["aura-dashboard"]
