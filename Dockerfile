# Ranklab's production image: the installed package (no source tree, no dev extras), static
# files collected at build time, an unprivileged user. It serves with `ranklab serve`;
# docker-compose.yml runs the same image as migrate, worker and beat.

# Build the wheel, and list the runtime dependencies on their own so that the layer
# installing them stays cached while only the code changes.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml ./
# With the `s3` extra: export files may go to an S3-compatible bucket (docs/deploy.md).
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['s3']))" > requirements.txt
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RANKLAB_DATA_DIR=/data \
    EXPORT_ROOT=/data/exports \
    STATIC_ROOT=/app/staticfiles \
    PORT=8000
WORKDIR /app
COPY --from=build /src/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels
# Static files belong to the image (root-owned, read-only at run time); SECRET_KEY here is a
# throwaway that only lets settings load, DEBUG=false selects the manifest storage.
RUN SECRET_KEY=collectstatic-only DEBUG=false ranklab manage collectstatic --noinput
RUN useradd --system --uid 10001 --create-home --shell /usr/sbin/nologin ranklab \
    && mkdir -p /data/exports \
    && chown -R ranklab:ranklab /data
USER ranklab
EXPOSE 8000
# No curl in the slim image: python probes /healthz with a Host header ALLOWED_HOSTS accepts.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "core.health"]
CMD ["ranklab", "serve"]
