"""The test live server (the browser tests' server) serves requests that write at the same
time on every test database, as production does: each request thread has a connection of
its own. (SQLite's default in-memory test database would hand every thread one shared
connection, and two requests storing at once broke each other — the arena's two replies
finishing together lost one of them.)"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from labeling.accounts.services import api_token_create
from labeling.models import Prompt
from tests.helpers import sample_records

WRITERS = 12
PROMPTS_EACH = 3


def import_over_http(url: str, secret: str, records: list[dict]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(records).encode(),
        headers={"Authorization": f"Token {secret}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.django_db(transaction=True)
def test_writes_at_once_through_the_live_server_are_all_stored(live_server, project, lead):
    secret = api_token_create(user=lead, name="writers").secret
    url = f"{live_server.url}/api/projects/{project.pk}/prompts/"
    barrier = threading.Barrier(WRITERS)
    statuses: list[int] = []

    def write(writer: int) -> None:
        records = sample_records(PROMPTS_EACH, prefix=f"w{writer}-")
        barrier.wait()
        statuses.append(import_over_http(url, secret, records))

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [201] * WRITERS
    assert Prompt.objects.filter(project=project).count() == WRITERS * PROMPTS_EACH
