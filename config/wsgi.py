"""WSGI entry point for gunicorn (`ranklab serve` loads it once, before its workers fork)."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# Every view module loaded now, not on each worker's first request.
url_patterns = get_resolver().url_patterns
