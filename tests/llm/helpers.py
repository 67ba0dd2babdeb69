"""Plain helpers of the llm tests."""

from __future__ import annotations

import json
from typing import Any

from labeling import services as labeling_services
from labeling.models import Project, Prompt
from llm.models import ModelEndpoint
from llm.services.endpoints import endpoint_create

SECRET = "sk-test-SECRET-do-not-leak-4242"


def make_endpoint(project: Project, base_url: str, **values: Any) -> ModelEndpoint:
    defaults: dict[str, Any] = {
        "name": "model-a",
        "model": "fake-a",
        "base_url": base_url,
        "api_key": SECRET,
        "max_retries": 1,
        "timeout_seconds": 10.0,
    }
    return endpoint_create(project=project, values={**defaults, **values})


def import_bare_prompts(project: Project, count: int, prefix: str = "q", responses: int = 0):
    records = [
        {
            "external_id": f"{prefix}{index}",
            "prompt": f"Question {prefix}{index}: explain something.",
            "responses": [f"Imported answer {slot} to {index}" for slot in range(responses)],
        }
        for index in range(count)
    ]
    labeling_services.prompts_import(project=project, raw=json.dumps(records))
    return list(
        Prompt.objects.filter(project=project, external_id__startswith=prefix).order_by("id")
    )
