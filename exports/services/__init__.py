"""Writes and reads of exports, as the views, the API, the tasks and the demo call them.

- `jobs`: create a job (queued on commit), run it through the `core.jobs` lifecycle, store
  and delete its files; `staging` the `.partial` files it writes first.
- `batches`: the one row generator behind jobs and streams (pairs, filters, split).
- `reading`: a job's files back, previews, small exports streamed to the client.
- `prompt_ids`: what incremental exports leave out.
- `card`: the dataset card made with the files; `archive` the card and files as one zip.

Parameters are checked by `exports.params.export_params_clean`.
"""

from __future__ import annotations

from exports.params import export_params_clean
from exports.services.archive import export_archive_open
from exports.services.card import export_card
from exports.services.jobs import (
    EXPORT_TASK,
    export_job_abandoned,
    export_job_create,
    export_job_delete_file,
    export_job_run,
)
from exports.services.prompt_ids import PromptIdSet, pack_prompt_ids, unpack_prompt_ids
from exports.services.reading import (
    PREVIEW_ROWS,
    STREAM_MAX_ROWS,
    FileMissing,
    TooLarge,
    export_file_name,
    export_file_open,
    export_preview,
    export_stream_open,
)

__all__ = [
    "EXPORT_TASK",
    "PREVIEW_ROWS",
    "STREAM_MAX_ROWS",
    "FileMissing",
    "PromptIdSet",
    "TooLarge",
    "export_archive_open",
    "export_card",
    "export_file_name",
    "export_file_open",
    "export_job_abandoned",
    "export_job_create",
    "export_job_delete_file",
    "export_job_run",
    "export_params_clean",
    "export_preview",
    "export_stream_open",
    "pack_prompt_ids",
    "unpack_prompt_ids",
]
