"""Import speed: N prompts x 4 responses through the import service into PostgreSQL.

.venv/bin/python bench/import_prompts.py [--prompts 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, machine, recreate_database


def payload(prompts: int, responses: int) -> bytes:
    lines = [
        json.dumps(
            {
                "external_id": f"p{index}",
                "prompt": f"Prompt {index}: " + "lorem ipsum dolor " * 15,
                "responses": [
                    {
                        "text": f"Response {slot}: " + "sit amet consectetur " * 40,
                        "model": f"m{slot}",
                    }
                    for slot in range(responses)
                ],
            }
        )
        for index in range(prompts)
    ]
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--responses", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    recreate_database()
    django_setup()
    from django.contrib.auth.models import User

    from labeling import services

    print(f"machine: {machine()}")
    body = payload(args.prompts, args.responses)
    print(f"payload: {len(body) / 1e6:.1f} MB JSON Lines")
    lead = User.objects.create_user("bench-import-lead")
    timings = []
    for attempt in range(args.repeat):
        project = services.project_create(creator=lead, name=f"import {attempt}")
        started = time.perf_counter()
        created = services.prompts_import(project=project, raw=body)
        timings.append(time.perf_counter() - started)
        assert len(created) == args.prompts
    best, worst = min(timings), max(timings)
    print(
        f"import {args.prompts} prompts x {args.responses} responses: best {best:.2f} s, "
        f"worst {worst:.2f} s ({args.prompts / best:,.0f} prompts/s)"
    )


if __name__ == "__main__":
    main()
