"""Chunk size: `LLM_CHUNK_PROMPTS` when set, else eight rounds of calls at the endpoints'
combined concurrency (at least 32 prompts) so the barrier at a chunk's end costs little."""

from __future__ import annotations

import pytest

from llm.models import GenerationJob
from llm.services.generation import chunk_prompts
from tests.llm.helpers import make_endpoint

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("concurrencies", "samples", "expected"),
    [([16], 1, 128), ([4], 1, 32), ([16, 16], 2, 64), ([64], 1, 512), ([1], 9, 32)],
)
def test_auto_chunks_follow_the_concurrency(settings, project, concurrencies, samples, expected):
    settings.LLM_CHUNK_PROMPTS = 0
    endpoints = [
        make_endpoint(project, "http://127.0.0.1:9/v1", name=f"e{i}", concurrency=c)
        for i, c in enumerate(concurrencies)
    ]
    job = GenerationJob.objects.create(
        project=project, endpoint_ids=[e.pk for e in endpoints], samples=samples
    )
    assert chunk_prompts(job) == expected
    settings.LLM_CHUNK_PROMPTS = 5
    assert chunk_prompts(job) == 5
