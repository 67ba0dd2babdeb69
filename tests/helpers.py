"""Plain helpers the tests share: records to import, the test password, prompt lookups.

Fixtures live in the `conftest.py` files; anything a test imports by name lives here.
"""

from __future__ import annotations

import json
import socket

from labeling import services as labeling_services
from labeling.models import Project, Prompt

PASSWORD = "correct-horse-battery-staple"


def unused_port() -> int:
    """A local port nothing listens on: bound for a moment, then released (for a server a
    test starts, or an address that refuses connections)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sample_records(count: int, responses: int = 3, prefix: str = "p") -> list[dict]:
    return [
        {
            "external_id": f"{prefix}{index}",
            "prompt": f"Question number {index}: explain something.",
            "responses": [
                {
                    "external_id": f"{prefix}{index}-r{slot}",
                    "text": f"Answer {slot} to {index}",
                    "model": f"model-{slot}",
                }
                for slot in range(responses)
            ],
        }
        for index in range(count)
    ]


def response_ids(prompt: Prompt) -> list[int]:
    return list(prompt.responses.order_by("position").values_list("id", flat=True))


def import_prompts(project: Project, records: list[dict]) -> list[Prompt]:
    labeling_services.prompts_import(project=project, raw=json.dumps(records))
    return list(Prompt.objects.filter(project=project).order_by("id"))
