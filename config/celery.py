"""The Celery app: JSON only, one task prefetched per worker, time limits from settings."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("ranklab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
