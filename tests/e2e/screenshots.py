"""Where browser tests save their screenshots: a temporary folder, so a test run never
rewrites tracked files; `./dev screenshots` points it at docs/screenshots on purpose."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SCREENSHOTS = Path(
    os.environ.get("RANKLAB_SCREENSHOTS") or tempfile.mkdtemp(prefix="ranklab-screenshots-")
)
