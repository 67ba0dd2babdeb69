"""Staged files: an export is written to `.partial` files that are stored when complete.

Staged files are named after the job and the attempt (`export-<job>-<attempt>-<part>.partial`)
so that whoever gives a job up — the sweep, or a worker retaking it — can remove what a
lost worker left behind. The staging folder is next to the storage's folder when it has one
(storing is then a rename), else the system's temporary folder of the worker's machine.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

from django.core.files import File
from django.core.files.storage import Storage

from exports.models import exports_storage

_BUFFER_BYTES = 1024 * 1024

if TYPE_CHECKING:
    _BinaryFile = File[bytes]  # generic in the stubs only
else:
    _BinaryFile = File


def staging_folder(storage: Storage) -> Path:
    try:
        folder = Path(storage.path("staging"))
    except NotImplementedError:
        folder = Path(tempfile.gettempdir()) / "ranklab-export-staging"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def staged_file(storage: Storage, *, job_id: int, attempt: int, part: str) -> tuple[IO[bytes], str]:
    """A new staged file of this attempt of the job, open for writing, and its path."""
    path = staging_folder(storage) / f"export-{job_id}-{attempt}-{part}.partial"
    # The caller closes it, whatever happens (see exports.services.jobs).
    return open(path, "wb", buffering=_BUFFER_BYTES), str(path)


def staged_files_remove(job_id: int) -> int:
    """Remove every staged file of the job, of every attempt; how many there were."""
    removed = 0
    for path in staging_folder(exports_storage()).glob(f"export-{job_id}-*.partial"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def staged_files_found() -> list[tuple[int, int, Path]]:
    """(job id, attempt, path) of every staged file in the staging folder."""
    found = []
    for path in staging_folder(exports_storage()).glob("export-*-*-*.partial"):
        _, job_id, attempt, *_ = path.name.split("-", 3)
        if job_id.isdigit() and attempt.isdigit():
            found.append((int(job_id), int(attempt), path))
    return found


class _StagedFile(_BinaryFile):
    """A finished staged file; FileSystemStorage moves it into place instead of copying."""

    def __init__(self, path: str) -> None:
        # The File owns the handle; store() closes it.
        super().__init__(open(path, "rb"), name=Path(path).name)  # noqa: SIM115
        self._path = path

    def temporary_file_path(self) -> str:
        return self._path


def store(storage: Storage, name: str, path: str) -> str:
    """Store a finished staged file under `name`; the name the storage chose."""
    staged = _StagedFile(path)
    try:
        return storage.save(name, staged)
    finally:
        staged.close()
