# One image for the API, the workers, Flower and the migrations.
# Build stage: compile wheels with the build tools; the runtime stage gets only the venv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY api ./api
COPY worker ./worker
COPY config ./config
COPY core ./core
COPY pipeline ./pipeline
# The pinned versions of constraints.txt; no dev or local-model extras in production.
RUN python -m venv /venv && /venv/bin/pip install -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /app gateway
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=gateway:gateway api ./api
COPY --chown=gateway:gateway worker ./worker
COPY --chown=gateway:gateway config ./config
COPY --chown=gateway:gateway core ./core
COPY --chown=gateway:gateway pipeline ./pipeline
COPY --chown=gateway:gateway migrations ./migrations
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLASK_APP=api \
    APP_ENV=production
USER gateway
EXPOSE 8000
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "api:create_app()"]
