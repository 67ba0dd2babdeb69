"""Celery tasks of the llm app: thin interfaces that call the services by id.

`LlmConfig.ready` imports this module, so every process that may send them has them
registered."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from llm.services import generation, judging


def generation_run(job_id: int) -> dict[str, Any]:
    return generation.generation_run(job_id=job_id)


def generation_chunk(job_id: int, prompt_ids: list[int]) -> dict[str, int]:
    return generation.generation_chunk_run(job_id=job_id, prompt_ids=prompt_ids)


# Registered by call rather than as decorators: Celery's decorators are untyped.
generation_run_task = shared_task(name=generation.GENERATION_TASK)(generation_run)
generation_chunk_task = shared_task(name=generation.CHUNK_TASK)(generation_chunk)


def judge_run(job_id: int) -> dict[str, Any]:
    return judging.judge_run_execute(job_id=job_id)


judge_run_task = shared_task(name=judging.JUDGE_TASK)(judge_run)
