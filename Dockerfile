# syntax=docker/dockerfile:1
# Production image of the extadmin web console (gunicorn + whitenoise). The same image runs a
# node agent with: python manage.py run_node --name NAME --storage /data
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY extadmin ./extadmin
COPY nodes ./nodes
COPY webhooks ./webhooks
COPY rollouts ./rollouts
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=extadmin.settings \
    EXTADMIN_PRODUCTION=1 \
    EXTADMIN_VAR=/data \
    DJANGO_STATIC_ROOT=/app/staticfiles
# ssh-keygen checks package signatures (EXTADMIN_SIGNATURES), on the console and on every node.
# Not pinned: the base image fixes the Debian release, and openssh-client's security updates are wanted.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 extadmin && useradd --system --uid 10001 --gid extadmin --home-dir /app extadmin \
    && mkdir -p /data && chown extadmin:extadmin /data
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=extadmin:extadmin manage.py ./
COPY --chown=extadmin:extadmin extadmin ./extadmin
COPY --chown=extadmin:extadmin nodes ./nodes
COPY --chown=extadmin:extadmin webhooks ./webhooks
COPY --chown=extadmin:extadmin rollouts ./rollouts
COPY --chown=extadmin:extadmin templates ./templates
COPY --chown=extadmin:extadmin static ./static
# collectstatic needs settings but no secrets: build-time placeholders, never used at run time.
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput -v0
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
CMD ["gunicorn", "extadmin.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "8", "--timeout", "900", \
     "--worker-class", "extadmin.gunicorn_worker.ThreadWorker", "--no-control-socket", "--access-logfile", "-", \
     "--logger-class", "extadmin.gunicorn_logging.GunicornLogger"]
