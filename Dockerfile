FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY labeling ./labeling
COPY rankings ./rankings
COPY exports ./exports
RUN pip install --no-cache-dir .
COPY . .
RUN SECRET_KEY=build-only DEBUG=false python manage.py collectstatic --noinput
RUN useradd --create-home ranklab && mkdir -p /data/exports && chown ranklab /data/exports
USER ranklab
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000"]
