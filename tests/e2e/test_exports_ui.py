"""A lead starts an export in the browser, watches htmx polling bring it to done, previews
the first rows and downloads the file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from exports import services, tasks
from exports.formats import split_for_prompt
from exports.models import ExportJob
from labeling import services as labeling_services
from labeling.models import Membership, Role
from rankings.rating.services import ranking_submit
from tests.e2e.screenshots import SCREENSHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]

RECORDS = [
    {
        "external_id": f"q{index}",
        "prompt": question,
        "responses": [
            {"text": good, "model": "model-alpha"},
            {"text": "I am not sure.", "model": "model-beta"},
            {"text": bad, "model": "model-gamma"},
        ],
    }
    for index, (question, good, bad) in enumerate(
        [
            ("Why is the sky blue?", "Air scatters blue light more.", "It reflects the sea."),
            ("What is 12 x 12?", "144.", "124."),
            ("Name a prime above 10.", "11.", "12."),
            ("Boiling point of water at sea level?", "100 °C.", "50 °C."),
        ]
    )
]


@pytest.fixture
def exports_project(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    User = get_user_model()
    lead = User.objects.create_user(username="lena", password="unused-password")
    project = labeling_services.project_create(creator=lead, name="Helpfulness pilot", overlap=2)
    labeling_services.prompts_import(project=project, raw=json.dumps(RECORDS))
    for name in ("rita", "raj"):
        rater = User.objects.create_user(username=name, password="unused-password")
        Membership.objects.create(project=project, user=rater, role=Role.RATER)
        while assignment := labeling_services.lease_next_assignment(project=project, rater=rater):
            # Everyone agrees: the first imported response best, the last worst.
            ranking = [[response_id] for response_id in sorted(assignment.shown_order)]
            ranking_submit(assignment_id=assignment.pk, rater=rater, ranking=ranking)
    return project, lead


def open_signed_in(browser, live_server, user, path: str):
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}{path}")
    return context, page, errors


def seed_that_splits(project) -> int:
    """Prompt ids differ run to run; pick a seed that puts prompts on both sides."""
    prompt_ids = list(project.prompts.values_list("id", flat=True))
    return next(
        seed
        for seed in range(1000)
        if len({split_for_prompt(prompt_id, seed, 0.25) for prompt_id in prompt_ids}) == 2
    )


def test_lead_exports_watches_progress_previews_and_downloads(
    browser, live_server, exports_project, monkeypatch
):
    project, lead = exports_project
    # Hold the job in the queue so the page has something to poll; the test runs it below,
    # as a Celery worker would.
    monkeypatch.setattr(tasks.export_job_run_task, "delay", lambda job_id: None)
    context, page, errors = open_signed_in(browser, live_server, lead, f"/exports/{project.pk}/")
    try:
        assert page.locator("h1").inner_text() == "Exports"
        page.select_option("#id_format", "trl-conversational")
        page.fill("#id_test_fraction", "0.25")
        page.fill("#id_seed", str(seed_that_splits(project)))
        page.evaluate("window.__marker = 1")
        page.click("#export-form button[type=submit]")

        row = page.locator('tr[data-export][data-status="queued"]')
        row.wait_for()
        assert row.locator("progress").is_visible()
        job = ExportJob.objects.get()
        assert job.format == "trl-conversational" and job.params["test_fraction"] == 0.25

        services.export_job_run(job_id=job.pk)
        page.wait_for_selector(f'tr[data-export="{job.pk}"][data-status="done"]')
        assert page.evaluate("window.__marker") == 1, "the page reloaded instead of polling"
        job.refresh_from_db()
        done_row = page.locator(f'tr[data-export="{job.pk}"]')
        assert str(job.rows) in done_row.inner_text()
        assert f"train {job.splits['train']['rows']} · test {job.splits['test']['rows']}" in (
            done_row.inner_text()
        )

        done_row.get_by_role("link", name="Preview").click()
        page.wait_for_selector("[data-preview-row]")
        first = json.loads(page.locator("[data-preview-row]").first.inner_text())
        assert first["prompt"] == [{"role": "user", "content": "Why is the sky blue?"}]
        assert first["chosen"] == [
            {"role": "assistant", "content": "Air scatters blue light more."}
        ]

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "exports.png"), full_page=True)

        with page.expect_download() as download_info:
            done_row.locator("[data-download]").click()
        download = download_info.value
        body = Path(download.path()).read_bytes()
        assert hashlib.sha256(body).hexdigest() == job.sha256
        assert download.suggested_filename.endswith("trl-conversational.jsonl")
        assert len(body.splitlines()) == job.rows
        assert not errors, errors
    finally:
        context.close()
