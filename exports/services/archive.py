"""An export as one zip archive laid out the way its dataset card reads it: `README.md` and
`data/<split>.<container>` (the split files, or the one file as `train`).

Streamed as it is read from storage, with fixed timestamps and permissions, so the same
files give the same archive bytes; the data files are stored as they are (Parquet and gzip
are compressed already), the card deflated.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator

from exports import formats
from exports.card import CARD_NAME, data_file_path
from exports.models import ExportJob
from exports.services.card import export_card
from exports.services.reading import export_file_open

_CHUNK_BYTES = 1024 * 1024
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""The earliest time a zip entry can carry: no clock in the archive."""


Part = tuple[str, str, int]
"""A data file: its path in the archive, the split to read, its size in bytes."""


def export_archive_parts(*, job: ExportJob) -> list[Part]:
    """The archive's data files; checks they are in storage."""
    if job.split_names:
        parts = [
            (data_file_path(split, job.container), split, int(job.splits[split]["size_bytes"]))
            for split in job.split_names
        ]
    else:
        parts = [(data_file_path(formats.TRAIN, job.container), formats.ALL, job.size_bytes)]
    for _, split, _ in parts:
        handle, _ = export_file_open(job=job, split=split)
        handle.close()
    return parts


class _Sink:
    """A write-only, unseekable file whose bytes are taken out as the zip is written."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks = []
        return data


def _entry(name: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    info.create_system = 3  # Unix, whatever the server runs on
    return info


def export_archive_open(*, job: ExportJob) -> Iterator[bytes]:
    """Check the export now and return the generator of its archive's bytes."""
    card = export_card(job=job)
    parts = export_archive_parts(job=job)
    return _archive(job, card, parts)


def _archive(job: ExportJob, card: str, parts: list[Part]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", allowZip64=True) as archive:
        archive.writestr(_entry(CARD_NAME, zipfile.ZIP_DEFLATED), card.encode())
        for path, split, size in parts:
            info = _entry(path, zipfile.ZIP_STORED)
            info.file_size = size
            handle, _ = export_file_open(job=job, split=split)
            zip64 = size >= zipfile.ZIP64_LIMIT
            with handle, archive.open(info, "w", force_zip64=zip64) as entry:
                while chunk := handle.read(_CHUNK_BYTES):
                    entry.write(chunk)
                    if data := sink.take():
                        yield data
    if data := sink.take():
        yield data
