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
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    loaded = subprocess.run(
        [sys.executable, "-c", LOADED_AT_START.format(names=set(SLOW_IMPORTS))],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(loaded.strip().splitlines()[-1]) == []
