"""Starting a process (a `manage.py` command, a web worker, a Celery worker) loads Django,
the apps and the URLconf, but not the libraries only some work needs: scipy.stats,
scipy.special and the openai client take seconds to import and tens of megabytes, and are
imported where a run, a rater report or a model call uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
SLOW_IMPORTS = ("scipy.stats", "scipy.special", "openai")

LOADED_AT_START = """
import json, sys
import django
django.setup()
from django.urls import get_resolver
get_resolver().url_patterns  # every view module, as the first request loads them
import labeling.management.commands.import_prompts
print(json.dumps(sorted(m for m in sys.modules if m in {names!r})))
"""


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="imports do not depend on the database: checked once"
)
def test_a_process_starts_without_the_slow_libraries() -> None:
    assert printed_by(LOADED_AT_START.format(names=set(SLOW_IMPORTS))) == []


def printed_by(code: str) -> object:
    """The JSON a new Python process running `code` prints last (Django's settings)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    printed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(printed.strip().splitlines()[-1])


WSGI_LOADED = """
import json, sys
from config.wsgi import application
from django.db import connections
print(json.dumps({
    "connected": [alias for alias in connections if connections[alias].connection is not None],
    "views": [name for name in VIEWS if name in sys.modules],
}))
"""


def test_the_web_app_loads_its_views_and_opens_no_connection_before_the_workers_fork() -> None:
    """`ranklab serve` loads the app in gunicorn's master and forks the workers from it: the
    views are loaded there once, and no database connection may exist to be shared by the
    workers (each opens its own)."""
    views = ["rankings.rating.api.views", "labeling.api.views", "exports.api.views"]
    loaded = printed_by(WSGI_LOADED.replace("VIEWS", repr(views)))
    assert loaded == {"connected": [], "views": views}
