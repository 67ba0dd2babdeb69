"""Generation throughput against a local OpenAI-compatible server at endpoint concurrency 16.

A threaded HTTP server on 127.0.0.1 (the tests' fake, with a fixed latency per call) stands
in for vLLM or Ollama; the job runs in process (tasks eager) on PostgreSQL, through the same
services as a worker: planning, chunks, the endpoint semaphore, the `openai` client, storing
each prompt's responses. Reports calls/s and the overhead per call beyond the server's own
latency (what a call costs us: client, semaphore, threads, database writes).

    .venv/bin/python bench/generation.py [--prompts 640] [--samples 1] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import ROOT, django_setup, machine, percentile, recreate_database

BENCH_DATABASE_URL = os.environ.get(
    "BENCH_LLM_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranklab_llm_bench"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=640)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--semaphore", default="", help="a Redis URL for the endpoint slots")
    args = parser.parse_args()
    os.environ["CELERY_BROKER_URL"] = ""
    os.environ["LLM_SEMAPHORE_URL"] = args.semaphore
    recreate_database(BENCH_DATABASE_URL)
    django_setup(BENCH_DATABASE_URL)
    sys.path.insert(0, str(ROOT))

    from django.contrib.auth.models import User

    from config.celery import app
    from labeling import services as labeling_services
    from llm.models import Generation, GenerationJob
    from llm.services.endpoints import endpoint_create
    from llm.services.generation import generation_create, generation_report
    from tests.llm.fake_server import FakeServer

    app.conf.task_always_eager = True
    lead = User.objects.create_user("bench-lead", password="x")
    project = labeling_services.project_create(creator=lead, name="generation bench")
    records = [
        {
            "external_id": f"g{index}",
            "prompt": f"Question {index}: explain something in a paragraph.",
        }
        for index in range(args.prompts)
    ]
    labeling_services.prompts_import(project=project, raw=json.dumps(records))
    with FakeServer() as server:
        server.state.latency = args.latency
        endpoint = endpoint_create(
            project=project,
            values={
                "name": "local",
                "base_url": server.base_url,
                "model": "bench-model",
                "api_key": "sk-bench",
                "concurrency": args.concurrency,
                "max_tokens": 256,
            },
        )
        started = time.perf_counter()
        job = generation_create(
            project=project,
            by=lead,
            endpoint_ids=[endpoint.pk],
            samples=args.samples,
            prompts="all",
        )
        wall = time.perf_counter() - started
        job = GenerationJob.objects.get(pk=job.pk)
        report = generation_report(job=job)
        most_at_once = server.state.max_in_flight
    calls = report["progress"]["succeeded"]
    assert report["status"] == "done" and calls == args.prompts * args.samples, report
    latencies = list(Generation.objects.filter(job=job).values_list("latency_ms", flat=True))
    ideal = calls * args.latency / args.concurrency
    overhead_ms = (wall * args.concurrency / calls - args.latency) * 1000
    client_ms = [value - args.latency * 1000 for value in latencies if value is not None]
    print(machine())
    print(
        f"{calls} calls, server latency {args.latency * 1000:.0f} ms, endpoint concurrency "
        f"{args.concurrency} (at most {most_at_once} in flight at the server)"
    )
    print(
        f"wall {wall:.2f} s (ideal {ideal:.2f} s): {calls / wall:.1f} calls/s "
        f"(ideal {args.concurrency / args.latency:.0f})"
    )
    print(
        f"overhead per call beyond the server's latency: {overhead_ms:.1f} ms "
        f"(of which in the client round trip: median {percentile(client_ms, 0.5):.1f} ms, "
        f"p95 {percentile(client_ms, 0.95):.1f} ms)"
    )


if __name__ == "__main__":
    main()
