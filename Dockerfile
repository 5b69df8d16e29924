# One image for every dashboard replica: `docker compose build` (or `up`) builds it once and
# tags it aura-dashboard:${VERSION}.

# Stage 1: the page's browser libraries, from npm (exact versions of frontend/package-lock.json).
FROM node:20-slim AS assets
WORKDIR /src
COPY frontend/package.json frontend/package-lock.json frontend/build.mjs ./frontend/
RUN npm ci --prefix frontend --no-audit --no-fund --loglevel=error \
 && mkdir -p aura_dashboard/web/static \
 && node frontend/build.mjs

# Stage 2: a virtual environment at /opt/aura holding the package and its dependencies; the
# runtime copies the environment alone, so no wheel or build file reaches the final image.
FROM python:3.11-slim AS build
RUN python -m venv --without-pip /opt/aura
WORKDIR /src
# Dependencies first, from setup.cfg alone: this layer is reused until setup.cfg changes.
# nvidia-ml-py (the `nvml` extra) reads NVIDIA GPUs when the container is given one (the
# compose profile `gpu`); GPUtil is left out: it needs nvidia-smi and distutils, NVML does not.
COPY setup.cfg ./
RUN python -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); \
print(c['options']['install_requires']); print(c['options.extras_require']['nvml'])" > requirements.txt
RUN pip --python /opt/aura/bin/python install --no-cache-dir -r requirements.txt
COPY setup.py README.md ./
COPY aura_dashboard ./aura_dashboard
COPY --from=assets /src/aura_dashboard/web/static/vendor ./aura_dashboard/web/static/vendor
RUN pip --python /opt/aura/bin/python install --no-cache-dir --no-deps . \
 && /opt/aura/bin/python -c "import aura_dashboard.app, pynvml"

# Stage 3: slim runtime, non-root.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 aura && mkdir -p /app/data && chown aura /app/data
COPY --from=build /opt/aura /opt/aura
WORKDIR /app
USER aura
# Configuration by environment (or an .env file in /app); see .env.example. In a container
# the log is JSON lines on stdout (the instance name in each line) and no file; set LOG_FILE
# (for example /app/data/logs/{instance}.log) to keep one as well.
ENV PATH=/opt/aura/bin:$PATH \
    LOG_CONSOLE=stdout \
    LOG_FILE= \
    AUDIT_STORE_PATH=/app/data/audit.db \
    PYTHONUNBUFFERED=1
VOLUME ["/app/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=5)" || exit 1
CMD ["aura-dashboard"]
