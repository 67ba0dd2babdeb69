"""The wheel carries everything Ranklab needs to run outside a checkout: templates, static
files, demo data and the `ranklab` command; `ranklab demo` from the unpacked wheel, in a
folder far from the checkout, serves pages with their styles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.helpers import unused_port
from tests.test_first_run import wait_for_page

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="packaging does not depend on the database: checked once, in the SQLite run",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the tracked files: the build leaves its build/ folder in the
    # source tree, and a test must not write into the checkout.
    source = tmp_path_factory.mktemp("source") / "ranklab"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("ranklab-*.whl")
    return found


def test_wheel_has_templates_static_files_demo_data_and_the_command(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(
            archive.read(name).decode() for name in names if name.endswith("entry_points.txt")
        )
    for app in ("core", "labeling", "rankings", "exports"):
        assert any(name.startswith(f"{app}/templates/") for name in names), app
    assert "core/templates/base.html" in names
    assert "core/static/ranklab/ranklab.css" in names
    assert any(name.startswith("demo/data/") and name.endswith(".json") for name in names)
    assert any(name.endswith("dist-info/licenses/LICENSE") for name in names)
    assert "ranklab = core.cli:main" in entry_points
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


@pytest.fixture
def unpacked_demo(wheel: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    home = tmp_path / "home"
    home.mkdir()
    port = unused_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST_", "CELERY_", "DATABASE_", "RANKLAB_"))
    }
    # The unpacked wheel comes first on the path, ahead of the checkout's editable install.
    env.update(PYTHONPATH=str(site), HOME=str(home), XDG_DATA_HOME="", PYTHONUNBUFFERED="1")
    log = tmp_path / "demo.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "demo", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_page(f"{url}/login/", process, log)  # type: ignore[arg-type]
        yield url, home
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_ranklab_demo_runs_from_the_wheel_outside_the_checkout(unpacked_demo, tmp_path: Path):
    url, home = unpacked_demo
    with urllib.request.urlopen(f"{url}/login/") as response:
        page = response.read().decode()
    assert "/static/ranklab/ranklab.css" in page
    with urllib.request.urlopen(f"{url}/static/ranklab/ranklab.css") as response:
        assert response.status == 200 and len(response.read()) > 1000
    # Data in the user's data folder proves the code ran from the wheel: from a checkout
    # (which has manage.py) it would live in the checkout.
    database = home / ".local" / "share" / "ranklab" / "ranklab.sqlite3"
    log = (tmp_path / "demo.log").read_text()
    assert f"Data: {database}" in log, log
    assert database.exists()
