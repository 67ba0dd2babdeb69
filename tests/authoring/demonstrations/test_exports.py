"""SFT exports: sft-messages, openai-sft and prompt-completion, through the export API and
jobs, in every container, read back by `datasets` and checked against TRL's formats.

TRL needs torch, so its dataset checks are restated from its documentation
(`tests.exports.test_readers.is_conversational` is `trl.data_utils.is_conversational`;
SFTTrainer's conversational language-modelling and prompt-completion types are checked here).
"""

from __future__ import annotations

import hashlib
import json
import os
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from authoring.demonstrations import reviews, services
from authoring.demonstrations.models import Demonstration, DemonstrationStatus
from exports.pairs import pseudonymous_rater_key
from exports.services import export_job_create, export_job_run
from labeling.models import Membership, Role
from tests.authoring.demonstrations.helpers import make_demo_project
from tests.exports.rated import CONTAINERS, load
from tests.exports.test_readers import is_conversational
from tests.helpers import import_prompts

datasets = pytest.importorskip("datasets")
pytestmark = pytest.mark.django_db
SFT_FORMATS = ["sft-messages", "openai-sft", "prompt-completion"]
ROLES = {"system", "user", "assistant"}

RECORDS: list[dict[str, Any]] = [
    {"external_id": "one", "prompt": "Name a prime number.", "responses": []},
    {
        "external_id": "chat",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "responses": [],
    },
    {"external_id": "three", "prompt": "Say something rude.", "responses": []},
    {"external_id": "four", "prompt": "Unreviewed one", "responses": []},
]


@pytest.fixture
def crew(lead, make_user, join):
    """Four demonstrations: accepted, edited by the reviewer, rejected, and one not routed."""
    project = make_demo_project(lead, review_rate=1.0)
    import_prompts(project, RECORDS)
    writer, reviewer = join(project, make_user("writer"), make_user("reviewer"))
    texts = ["7 is prime.", "Paris", "No.", "Left unreviewed"]
    for text in texts:
        task = services.task_for_rater(project=project, rater=writer)
        services.demonstration_submit(assignment_id=task.assignment.pk, rater=writer, text=text)
    decisions = [
        {"decision": "accept"},
        {"decision": "edit", "text": "Paris, on the Seine."},
        {"decision": "reject", "reason": "unhelpful"},
    ]
    for decision in decisions:
        review = services.task_for_rater(project=project, rater=reviewer).review
        reviews.review_submit(review_id=review.pk, reviewer=reviewer, **decision)
    Demonstration.objects.filter(text="Left unreviewed").update(
        status=DemonstrationStatus.UNREVIEWED
    )
    return SimpleNamespace(project=project, writer=writer, reviewer=reviewer)


@pytest.fixture
def written(crew):
    return crew.project


@pytest.fixture
def engineer_of(make_user):
    def add(project):
        user = make_user("engineer")
        Membership.objects.create(project=project, user=user, role=Role.ENGINEER)
        return user

    return add


def run(project, user, **kwargs):
    job = export_job_create(project=project, created_by=user, **kwargs)
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    return job


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("fmt", SFT_FORMATS)
def test_every_sft_format_loads_with_datasets(
    crew, written, engineer_of, export_folder, tmp_path, fmt, container
):
    job = run(written, engineer_of(written), format=fmt, container=container)
    data = load(job, export_folder, tmp_path)
    assert data.num_rows == job.rows == 2  # accepted and edited; rejected and unreviewed out
    rows = list(data)
    for row in rows:
        assert is_conversational(row)
    if fmt == "prompt-completion":
        assert set(data.column_names) >= {"prompt", "completion"}
        for row in rows:
            assert [message["role"] for message in row["completion"]] == ["assistant"]
            assert row["prompt"][-1]["role"] == "user"
        assert rows[1]["completion"][0]["content"] == "Paris, on the Seine."
    else:
        for row in rows:
            roles = [message["role"] for message in row["messages"]]
            assert roles[-1] == "assistant" and set(roles) <= ROLES
        assert rows[0]["messages"] == [
            {"role": "user", "content": "Name a prime number."},
            {"role": "assistant", "content": "7 is prime."},
        ]
        assert [m["role"] for m in rows[1]["messages"]] == [
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
        ]
        assert rows[1]["messages"][-1]["content"] == "Paris, on the Seine."
    if fmt == "openai-sft":
        assert data.column_names == ["messages"]
    else:
        assert data.features["demonstration_id"].dtype == "int64"
        assert data.features["reviewed"].dtype == "bool"
        assert rows[0]["rater_key"] == pseudonymous_rater_key(
            written.rater_key_salt, crew.writer.pk
        )
        assert rows[0]["reviewer_key"] == pseudonymous_rater_key(
            written.rater_key_salt, crew.reviewer.pk
        )
        assert [row["review_status"] for row in rows] == ["accepted", "edited"]
        assert rows[1]["review_edit_distance"] == len(", on the Seine.")
        assert rows[0]["prompt_external_id"] == "one"
        assert str(rows[0]["reviewer_key"]) != rows[0]["rater_key"]


def test_include_unreviewed_adds_them_but_never_rejected(
    written, engineer_of, export_folder, tmp_path
):
    job = run(
        written, engineer_of(written), format="sft-messages", params={"include_unreviewed": True}
    )
    rows = list(load(job, export_folder, tmp_path))
    assert [row["messages"][-1]["content"] for row in rows] == [
        "7 is prime.",
        "Paris, on the Seine.",
        "Left unreviewed",
    ]
    assert rows[2]["reviewed"] is False and rows[2]["reviewer_key"] is None


@pytest.mark.parametrize("container", CONTAINERS)
def test_reruns_are_byte_identical(written, engineer_of, container):
    user = engineer_of(written)
    first = run(
        written,
        user,
        format="sft-messages",
        container=container,
        params={"test_fraction": 0.5, "seed": 3},
    )
    second = run(
        written,
        user,
        format="sft-messages",
        container=container,
        params={"test_fraction": 0.5, "seed": 3},
    )
    assert first.sha256 == second.sha256 and first.rows == second.rows == 2
    assert first.splits["train"]["rows"] + first.splits["test"]["rows"] == 2
    assert first.splits["train"].get("sha256") == second.splits["train"].get("sha256")


def test_export_api_accepts_the_new_formats_and_downloads(
    written, engineer_of, api_for, django_capture_on_commit_callbacks
):
    client = api_for(engineer_of(written))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/projects/{written.pk}/exports/",
            {"format": "openai-sft", "container": "jsonl"},
            format="json",
        )
    assert response.status_code == 202, response.json()
    job = client.get(f"/api/exports/{response.json()['id']}/").json()
    assert job["status"] == "done" and job["rows"] == 2
    raw = client.get(f"/api/exports/{job['id']}/download/")
    body = b"".join(raw.streaming_content)
    assert hashlib.sha256(body).hexdigest() == job["sha256"]
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert all(set(line) == {"messages"} for line in lines)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "sft-messages", "strategy": "consensus"}, "strategy"),
        ({"format": "sft-messages", "include_ties": True}, "include_ties"),
        ({"format": "sft-messages", "min_agreement": 0.5}, "min_agreement"),
        ({"format": "trl", "include_unreviewed": True}, "include_unreviewed"),
        ({"format": "sft-chat"}, "format"),
    ],
)
def test_parameters_that_do_not_apply_are_refused(written, engineer_of, api_for, body, field):
    response = api_for(engineer_of(written)).post(
        f"/api/projects/{written.pk}/exports/", body, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_streaming_an_sft_format_is_refused_cleanly(written, engineer_of, api_for):
    response = api_for(engineer_of(written)).get(
        f"/api/projects/{written.pk}/exports/stream/", {"format": "sft-messages"}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "format"


def test_excluded_writers_are_left_out(crew, written, engineer_of, export_folder, tmp_path):
    Membership.objects.filter(project=written, user=crew.writer).update(excluded=True)
    job = run(written, engineer_of(written), format="sft-messages")
    assert job.rows == 0


def test_rank_then_rewrite_rows_carry_the_edit_distance(
    lead, make_user, join, engineer_of, export_folder, tmp_path
):
    project = make_demo_project(lead, mode="rank_then_rewrite", review_rate=0.0)
    import_prompts(
        project,
        [{"prompt": "Hi?", "responses": [{"text": "Hello"}, {"text": "Hey there"}]}],
    )
    (writer,) = join(project, make_user("writer"))
    task = services.task_for_rater(project=project, rater=writer).assignment
    best = task.shown_order[1]
    services.demonstration_submit(
        assignment_id=task.pk, rater=writer, text="Hello!", ranking=[[best], [task.shown_order[0]]]
    )
    job = run(
        project,
        engineer_of(project),
        format="prompt-completion",
        params={"include_unreviewed": True},
    )
    (row,) = list(load(job, export_folder, tmp_path))
    assert row["mode"] == "rank_then_rewrite"
    assert row["original_response_id"] == best
    original = project.prompts.get().responses.get(pk=best).text
    from authoring.demonstrations.edits import edit_distance

    assert row["edit_distance"] == edit_distance(original, "Hello!")


def test_sft_exports_have_no_card_and_say_so(written, engineer_of, api_for):
    user = engineer_of(written)
    job = run(written, user, format="sft-messages")
    detail = api_for(user).get(f"/api/exports/{job.pk}/").json()
    assert detail["card_url"] is None
    response = api_for(user).get(f"/api/exports/{job.pk}/card/", HTTP_ACCEPT="text/markdown")
    assert response.status_code == 409
    assert "sft-messages exports have no dataset card" in response.json()["detail"]
