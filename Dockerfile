# One image for the API and the worker (production). `make dev` does not use it.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.9
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY fxcrm ./fxcrm
COPY alembic ./alembic
COPY alembic.ini ./
RUN uv sync --frozen --no-dev
RUN useradd --system --uid 10001 fxcrm && chown -R fxcrm /app
USER fxcrm
ENV PATH=/app/.venv/bin:$PATH
CMD ["fxcrm", "--help"]
