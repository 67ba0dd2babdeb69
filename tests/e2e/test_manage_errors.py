"""On the lead's Manage page a refused form says why: htmx swaps the 400 answer's fragment
(bad import file, invalid settings), and a success message never lingers next to values
that were not saved."""

from __future__ import annotations

import json

import pytest

from labeling import services as labeling_services
from labeling.models import Project
from tests.helpers import sample_records

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]


def test_a_bad_import_shows_its_error_after_an_earlier_success(open_as, lead, project, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(record) for record in sample_records(2)))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Hi", "responses": [{"text": 5}, {"text": "b"}]}\n')
    page = open_as(lead, f"/projects/{project.pk}/")

    page.set_input_files("#imports input[type=file]", str(good))
    page.click("#imports button[type=submit]")
    page.wait_for_selector("#imports .flash.success")
    assert "Imported 2 prompts" in page.inner_text("#imports")

    page.set_input_files("#imports input[type=file]", str(bad))
    page.click("#imports button[type=submit]")
    alert = page.wait_for_selector("#imports .flash.error")
    assert "line 1" in alert.inner_text()
    assert page.locator("#imports .flash.success").count() == 0
    assert project.prompts.count() == 2


def test_invalid_settings_are_marked_and_not_reported_saved(open_as, lead, project):
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(1)))
    page = open_as(lead, f"/projects/{project.pk}/")
    page.fill("#settings input[name=gold_rate]", "1.5")
    page.click("#settings button[type=submit]")
    page.wait_for_selector("#settings .has-error")
    status = page.inner_text("#settings .flash")
    assert "saved" not in status.lower()
    assert Project.objects.get(pk=project.pk).gold_rate != 1.5
