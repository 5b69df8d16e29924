# First draft; the container issue finishes it (asset build stage, compose with nginx).
FROM python:3.11-slim
WORKDIR /app
COPY setup.py setup.cfg README.md ./
COPY aura_dashboard ./aura_dashboard
RUN pip install --no-cache-dir . && useradd --create-home --uid 10001 aura && mkdir -p /app/data && chown aura /app/data
USER aura
ENV LOG_FILE=/app/data/dashboard.log
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
CMD ["aura-dashboard"]
