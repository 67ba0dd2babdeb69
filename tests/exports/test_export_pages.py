"""The lead's export page: form, job list with htmx polling, preview, file deletion."""

from __future__ import annotations

import pytest

from exports import services
from exports.models import ExportJob
from tests.exports.test_export_api import rank_everything

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ranked(imported, rater, rater2):
    rank_everything(imported, [rater, rater2])
    return imported


@pytest.fixture
def lead_client(client, lead):
    client.force_login(lead)
    return client


def page_url(project) -> str:
    return f"/exports/{project.pk}/"


def form_data(**overrides) -> dict:
    data = {
        "format": "trl",
        "strategy": "all_pairs",
        "container": "jsonl",
        "with_metadata": "on",
        "exclude_excluded_raters": "on",
        "min_agreement": "0",
        "min_raters": "1",
        "test_fraction": "0",
        "seed": "0",
    }
    data.update(overrides)
    return data


def test_it_shows_the_form_and_an_empty_job_list(lead_client, ranked):
    response = lead_client.get(page_url(ranked))

    assert response.status_code == 200
    text = response.text
    assert 'id="export-form"' in text and 'name="format"' in text and 'name="test_fraction"' in text
    assert "No exports yet" in text
    assert 'hx-trigger="every 1s"' not in text


def test_it_starts_an_export_and_lists_it_with_download_and_preview(
    lead_client, ranked, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(page_url(ranked), form_data(test_fraction="0.4", seed="2"))

    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.status == "done" and job.params["test_fraction"] == 0.4
    text = lead_client.get(page_url(ranked)).text
    assert f'data-export="{job.pk}" data-status="done"' in text
    assert f"/api/exports/{job.pk}/download/" in text
    assert f"/api/exports/{job.pk}/download/?split=test" in text
    assert f"/exports/{ranked.pk}/{job.pk}/preview/" in text
    assert "Delete file" in text


def test_htmx_post_answers_with_the_job_list_fragment(
    lead_client, ranked, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(page_url(ranked), form_data(container="parquet"), **HTMX)

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="jobs"')
    assert "<html" not in response.text


def test_invalid_form_comes_back_with_errors_retargeted(lead_client, ranked):
    response = lead_client.post(
        page_url(ranked), form_data(format="trl-unpaired", include_ties="on"), **HTMX
    )

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#export-form"
    assert "trl-unpaired has no way to express a tie" in response.text
    assert not ExportJob.objects.exists()
    bad_number = lead_client.post(page_url(ranked), form_data(min_agreement="2"))
    assert bad_number.status_code == 400 and "field-error" in bad_number.text


def test_running_jobs_make_the_list_poll_and_show_a_progress_bar(lead_client, ranked, lead):
    ExportJob.objects.create(
        project=ranked, created_by=lead, status="running", rows=40, rows_estimated=100,
        params=services.export_params_clean({}),
    )  # fmt: skip

    fragment = lead_client.get(page_url(ranked), **HTMX).text

    assert 'hx-trigger="every 1s"' in fragment
    assert '<progress max="100" value="40"' in fragment
    assert "running · 40 of ~100 rows" in fragment


def test_failed_jobs_show_their_error(lead_client, ranked, lead):
    ExportJob.objects.create(
        project=ranked, created_by=lead, status="failed", error="RuntimeError: disk full",
        params=services.export_params_clean({}),
    )  # fmt: skip

    text = lead_client.get(page_url(ranked)).text

    assert "RuntimeError: disk full" in text and 'hx-trigger="every 1s"' not in text


def test_preview_shows_the_first_rows(lead_client, ranked, lead):
    job = services.export_job_create(project=ranked, created_by=lead)
    services.export_job_run(job_id=job.pk)

    fragment = lead_client.get(f"/exports/{ranked.pk}/{job.pk}/preview/", **HTMX).text
    full = lead_client.get(f"/exports/{ranked.pk}/{job.pk}/preview/").text

    assert fragment.count("data-preview-row") == services.PREVIEW_ROWS
    assert "Question number 0" in fragment and "<html" not in fragment
    assert "<html" in full and "Preview of export" in full


def test_a_lead_deletes_a_file_from_the_page(
    lead_client, ranked, lead, django_capture_on_commit_callbacks
):
    job = services.export_job_create(project=ranked, created_by=lead)
    services.export_job_run(job_id=job.pk)

    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(f"/exports/{ranked.pk}/{job.pk}/delete-file/", **HTMX)

    job.refresh_from_db()
    assert job.file_deleted_at is not None and not job.file
    assert "deleted" in response.text and "/download/" not in response.text


def test_engineers_use_the_page_but_cannot_delete_files(client, engineer, ranked, lead):
    job = services.export_job_create(project=ranked, created_by=lead)
    services.export_job_run(job_id=job.pk)
    client.force_login(engineer)

    page = client.get(page_url(ranked))
    delete = client.post(f"/exports/{ranked.pk}/{job.pk}/delete-file/")

    assert page.status_code == 200 and "Delete file" not in page.text
    assert delete.status_code == 403


def test_raters_and_outsiders_are_kept_out(client, rater, outsider, ranked):
    client.force_login(rater)
    assert client.get(page_url(ranked)).status_code == 403
    assert client.post(page_url(ranked), form_data()).status_code == 403
    client.force_login(outsider)
    assert client.get(page_url(ranked)).status_code == 404
    client.logout()
    assert client.get(page_url(ranked)).status_code == 302


def test_the_job_list_fragment_costs_a_fixed_number_of_queries(
    lead_client, ranked, lead, django_assert_max_num_queries
):
    for _ in range(5):
        job = services.export_job_create(project=ranked, created_by=lead)
        services.export_job_run(job_id=job.pk)

    with django_assert_max_num_queries(8):
        lead_client.get(page_url(ranked), **HTMX)
