#!/bin/sh
# One image, one process per container: `web`, `worker`, `beat`, `runner`, `caddy`, `docker-proxy`,
# or a command.
set -e
case "$1" in
    web)
        python manage.py migrate --no-input
        exec gunicorn spacedock.wsgi --bind "${SPACEDOCK_BIND:-127.0.0.1:8000}" --worker-class gthread \
            --threads "${SPACEDOCK_WEB_THREADS:-16}" --workers "${SPACEDOCK_WEB_WORKERS:-2}" --timeout 120 \
            --access-logfile - ;;
    worker)
        exec celery -A spacedock worker --queues builds,celery \
            --concurrency "${SPACEDOCK_BUILD_CONCURRENCY:-2}" --prefetch-multiplier 1 --loglevel INFO ;;
    beat)
        exec celery -A spacedock beat --loglevel INFO --schedule "$SPACEDOCK_DATA_DIR/celerybeat-schedule" ;;
    runner)
        exec python manage.py runner ;;
    docker-proxy)
        exec python manage.py docker_proxy ;;
    caddy)
        # Admin API only; the runner loads every route and the TLS policy through it.
        SPACEDOCK_CADDY_BIN="${SPACEDOCK_CADDY_BIN:-$(command -v caddy)}" exec python manage.py caddy ;;
    *)
        exec "$@" ;;
esac
