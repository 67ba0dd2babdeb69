"""The export parameter registry: the form, the API serializers, validation and the filters
are all built from it, agree with each other, and a filter added there (`max_margin`)
works everywhere with no other edit."""

from __future__ import annotations

import json

import pytest
from rest_framework import serializers

from core.errors import InvalidInput
from exports import services
from exports.api.serializers import ExportCreateSerializer, ExportStreamQuerySerializer
from exports.forms import ExportForm
from exports.models import ExportJob
from exports.params import PARAMS, PARAMS_BY_NAME, STORED_PARAMS, Kind, export_params_clean
from tests.helpers import import_prompts, sample_records

pytestmark = pytest.mark.django_db

NUMBERS = [param for param in PARAMS if param.kind in (Kind.INTEGER, Kind.NUMBER)]


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


# --- one declaration, four derivations ----------------------------------------------------


def test_the_form_has_a_field_for_every_parameter_shown_on_the_page_in_registry_order():
    form = ExportForm()

    assert list(form.fields) == [param.name for param in PARAMS if param.in_form]
    assert [field.name for _, fields in form.fieldsets() for field in fields] == list(form.fields)
    assert form.fields["min_raters"].label == PARAMS_BY_NAME["min_raters"].label


def test_the_serializer_has_a_field_for_every_parameter():
    fields = ExportCreateSerializer().fields

    assert list(fields) == [param.name for param in PARAMS]
    assert str(fields["max_margin"].help_text).startswith(PARAMS_BY_NAME["max_margin"].help)


def test_validation_stores_every_parameter_but_the_job_columns_with_its_default():
    defaults = export_params_clean({})

    assert defaults == {param.name: param.default for param in STORED_PARAMS}
    assert list(defaults) == [param.name for param in PARAMS if param.stored]
    assert {"format", "strategy", "container"}.isdisjoint(defaults)


@pytest.mark.parametrize("param", NUMBERS, ids=lambda param: param.name)
def test_form_serializer_and_validation_share_each_numeric_range(param):
    below = param.minimum - 1
    above = None if param.maximum is None else param.maximum + 1
    for value in [below, above] if above is not None else [below]:
        with pytest.raises(InvalidInput) as refused:
            export_params_clean({param.name: value})
        assert refused.value.field == param.name
        serializer = ExportCreateSerializer(data={param.name: value})
        assert not serializer.is_valid() and param.name in serializer.errors
        if param.in_form:
            form = ExportForm(form_data(**{param.name: str(value)}))
            assert not form.is_valid() and param.name in form.errors
    inside = param.minimum if param.name != "since_export" else None
    if inside is not None:
        assert export_params_clean({param.name: inside})[param.name] == inside
        assert ExportCreateSerializer(data={param.name: inside}).is_valid()


def test_the_stream_serializer_keeps_its_narrower_container_and_own_options():
    fields = ExportStreamQuerySerializer().fields

    container = fields["container"]
    assert isinstance(container, serializers.ChoiceField)
    assert set(container.choices) == {"jsonl", "jsonl.gz"}
    assert {"split", "limit"} <= set(fields) and "max_margin" in fields


# --- unknown parameters ------------------------------------------------------------------


def test_an_unknown_parameter_is_refused_naming_it(api_for, engineer, project):
    response = api_for(engineer).post(
        f"/api/projects/{project.pk}/exports/", {"min_agreemnt": 0.5}, format="json"
    )

    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "min_agreemnt" and body["code"] == "invalid"
    assert "min_agreemnt" in body["detail"]
    assert not ExportJob.objects.exists()


def test_an_unknown_stream_query_parameter_is_refused_naming_it(api_for, engineer, project):
    response = api_for(engineer).get(
        f"/api/projects/{project.pk}/exports/stream/", {"colour": "blue"}
    )

    assert response.status_code == 400 and response.json()["field"] == "colour"


# --- max_margin, added through the registry alone -------------------------------------------


@pytest.fixture
def margins(project, rater, rater2, make_ranking):
    """Nine pairs: margins 1 and 2 from two plain rankings (six pairs), 3 from a ranking with
    a strength label (three pairs)."""
    prompts = import_prompts(project, sample_records(2))
    make_ranking(prompts[0], rater, [[0], [1], [2]])
    make_ranking(prompts[0], rater2, [[2], [1], [0]])
    make_ranking(prompts[1], rater, [[1], [0], [2]], strength=3)
    return prompts


def rows_of(job: ExportJob, export_folder) -> list[dict]:
    return [json.loads(line) for line in (export_folder / job.file.name).read_text().splitlines()]


def test_max_margin_drops_pairs_whose_margin_exceeds_it(project, lead, margins, export_folder):
    everything = services.export_job_create(project=project, created_by=lead)
    services.export_job_run(job_id=everything.pk)
    capped = services.export_job_create(project=project, created_by=lead, params={"max_margin": 1})
    services.export_job_run(job_id=capped.pk)

    all_rows = rows_of(ExportJob.objects.get(pk=everything.pk), export_folder)
    capped_rows = rows_of(ExportJob.objects.get(pk=capped.pk), export_folder)
    assert {row["margin"] for row in all_rows} == {1.0, 2.0, 3.0}
    assert {row["margin"] for row in capped_rows} == {1.0}
    assert capped_rows == [row for row in all_rows if row["margin"] <= 1]
    assert ExportJob.objects.get(pk=capped.pk).params["max_margin"] == 1.0


def test_max_margin_zero_keeps_only_ties(project, lead, rater, make_ranking, export_folder):
    [prompt] = import_prompts(project, sample_records(1))
    make_ranking(prompt, rater, [[0, 1], [2]])

    job = services.export_job_create(
        project=project, created_by=lead, params={"max_margin": 0, "include_ties": True}
    )
    services.export_job_run(job_id=job.pk)

    rows = rows_of(ExportJob.objects.get(pk=job.pk), export_folder)
    assert [row["margin"] for row in rows] == [0.0]


def test_the_api_takes_max_margin_and_refuses_a_negative_one(
    api_for, engineer, project, margins, django_capture_on_commit_callbacks
):
    client = api_for(engineer)
    url = f"/api/projects/{project.pk}/exports/"

    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(url, {"max_margin": 2.5}, format="json")
    refused = client.post(url, {"max_margin": -1}, format="json")
    streamed = client.get(f"/api/projects/{project.pk}/exports/stream/", {"max_margin": "1"})

    assert created.status_code == 202, created.json()
    job = client.get(f"/api/exports/{created.json()['id']}/").json()
    assert job["status"] == "done" and job["params"]["max_margin"] == 2.5
    assert job["rows"] == 9 - 3  # the pairs of the ranking with strength 3 are dropped
    assert refused.status_code == 400 and refused.json()["field"] == "max_margin"
    lines = b"".join(streamed.streaming_content).splitlines()
    assert lines and all(json.loads(line)["margin"] <= 1 for line in lines)


def test_the_schema_documents_max_margin(client):
    # JSON: the same document as the default YAML, without seconds of pure-Python parsing.
    schema = client.get("/api/schema/", {"format": "json"}).json()
    stream = schema["paths"]["/api/projects/{project_id}/exports/stream/"]["get"]
    assert "max_margin" in {parameter["name"] for parameter in stream["parameters"]}
    create = schema["components"]["schemas"]["ExportCreateRequest"]["properties"]
    assert create["max_margin"]["minimum"] == 0


def test_the_form_takes_max_margin(
    client, lead, project, margins, django_capture_on_commit_callbacks
):
    client.force_login(lead)

    page = client.get(f"/exports/{project.pk}/").text
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/exports/{project.pk}/", form_data(max_margin="1.5"))
    refused = client.post(f"/exports/{project.pk}/", form_data(max_margin="-2"))

    assert 'name="max_margin"' in page
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.status == "done" and job.params["max_margin"] == 1.5 and job.rows == 4
    assert refused.status_code == 400 and "field-error" in refused.text


def test_an_empty_max_margin_in_the_form_keeps_every_pair(
    client, lead, project, margins, django_capture_on_commit_callbacks
):
    client.force_login(lead)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/exports/{project.pk}/", form_data(max_margin=""))

    job = ExportJob.objects.get()
    assert job.params["max_margin"] is None and job.rows == 9
