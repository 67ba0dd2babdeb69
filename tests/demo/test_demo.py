"""`manage.py demo`: two projects a simulated crowd has ranked through the raters' own
services, agreement history, the bad raters flagged, a finished export, and logins that
still have work to do. Built once for the module (a few seconds) inside a transaction that
is rolled back at the end, so the other test modules never see it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from rest_framework.test import APIClient

from core.jobs import JobStatus
from core.jobs import JobStatus as RunStatus
from demo import crowd, services
from demo.scenario import SCENARIO_FILES, load_scenario
from exports.models import ExportJob, exports_storage
from labeling import services as labeling_services
from labeling.models import Invite, Membership, Project, Response
from rankings.models import AgreementRun, Flag, FlagStatus, Ranking

CAREFUL = {profile.username for profile in crowd.CROWD if profile.kind == crowd.CAREFUL}
RANDOM_CLICKER = next(p.username for p in crowd.CROWD if p.kind == crowd.RANDOM_CLICKER)
ALWAYS_FIRST = next(p.username for p in crowd.CROWD if p.kind == crowd.ALWAYS_FIRST)


@pytest.fixture(autouse=True)
def export_folder():
    """The demo's export folder, set for the whole module by `built`, stays in force."""
    return None


@pytest.fixture(scope="module")
def built(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[dict]:
    """The demo as `manage.py demo` builds it, with its printed summary."""
    exports_folder = tmp_path_factory.mktemp("demo-exports")
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(exports_folder)},
        },
    }
    with (
        django_db_blocker.unblock(),
        override_settings(
            STORAGES=storages,
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        ),
        transaction.atomic(),
    ):
        output = io.StringIO()
        call_command("demo", stdout=output)
        names = [load_scenario(name).name for name in SCENARIO_FILES]
        projects = [Project.objects.get(name=name) for name in names]
        yield {"output": output.getvalue(), "ranked": projects[0], "pairwise": projects[1]}
        transaction.set_rollback(True)


@pytest.fixture
def ranked(built, db) -> Project:
    return built["ranked"]


@pytest.fixture
def pairwise(built, db) -> Project:
    return built["pairwise"]


def open_flags(project: Project) -> dict[str, set[str]]:
    flagged: dict[str, set[str]] = {}
    for username, code in Flag.objects.filter(project=project, status=FlagStatus.OPEN).values_list(
        "rater__username", "code"
    ):
        flagged.setdefault(username, set()).add(code)
    return flagged


def keys_of(value: object) -> Iterator[str]:
    """Every key of a JSON value, however deeply nested."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_of(item)


def test_it_builds_a_ranked_project_with_the_hhh_rubric_and_a_pairwise_one(ranked, pairwise):
    assert ranked.overlap == 3 and ranked.allow_ties and ranked.require_rationale
    assert [item["key"] for item in ranked.rubric] == ["helpful", "honest", "harmless"]
    assert set(ranked.prompts.values_list("responses__position", flat=True)) == {0, 1, 2, 3}
    assert ranked.prompts.count() >= 30
    assert ranked.prompts.filter(is_gold=True).count() >= 3
    assert set(pairwise.prompts.values_list("responses__position", flat=True)) == {0, 1}
    assert pairwise.prompts.count() >= 18
    conversation = ranked.prompts.get(external_id="travel-chat").messages
    assert [message["role"] for message in conversation] == ["system", "user", "assistant", "user"]


def test_the_rankings_come_from_the_crowd_through_submitted_assignments(ranked, pairwise):
    crowd_names = {profile.username for profile in crowd.CROWD}
    assert set(
        Ranking.objects.filter(project=ranked).values_list("rater__username", flat=True)
    ) == (crowd_names)
    for project in (ranked, pairwise):
        rankings = Ranking.objects.filter(project=project)
        assert rankings.count() > project.prompts.count()
        assert set(rankings.values_list("rater__username", flat=True)) <= crowd_names
        assert not rankings.filter(assignment__status="leased").exists()
        assert not rankings.filter(seconds__isnull=True).exists()
    # Careful raters fill the rubric the project asks for and say why.
    careful = Ranking.objects.filter(project=ranked, rater__username__in=CAREFUL)
    assert all(ranking.rationale for ranking in careful)
    assert careful.exclude(ratings={}).count() > careful.count() / 2
    # Pairwise rankings carry a strength, and "about the same" comes with a tie.
    strengths = Ranking.objects.filter(project=pairwise).values_list("strength", "groups")
    assert {strength for strength, _ in strengths} >= {1, 2, 3}
    assert all((strength == 0) == (len(groups) == 1) for strength, groups in strengths)


def test_agreement_ran_several_times_while_the_crowd_worked(ranked, pairwise):
    for project in (ranked, pairwise):
        runs = AgreementRun.objects.filter(project=project, status=RunStatus.DONE)
        assert runs.count() >= 2
        assert not AgreementRun.objects.filter(project=project).exclude(status=RunStatus.DONE)
        latest = runs.order_by("-id").first()
        assert latest is not None
        assert latest.last_ranking_id == Ranking.objects.filter(project=project).latest("id").pk
        low, high = latest.metrics["pairwise_agreement_ci"]
        value = latest.metrics["pairwise_agreement"]
        assert low < value < high and value > 0.6
        # Earlier runs saw fewer rankings: a trend, not one point repeated.
        assert len(set(runs.values_list("n_rankings", flat=True))) == runs.count()


def test_the_clickers_are_flagged_with_evidence_and_no_careful_rater_is(ranked, pairwise):
    flagged = open_flags(ranked)
    assert "LOW_AGREEMENT" in flagged[RANDOM_CLICKER]
    assert {"STRAIGHT_LINING", "POSITION_BIAS"} <= flagged[ALWAYS_FIRST]
    for flag in Flag.objects.filter(project=ranked):
        assert flag.evidence["summary"]
    assert not CAREFUL & set(flagged)
    assert not CAREFUL & set(open_flags(pairwise))


def test_gold_accuracy_is_measured(ranked):
    latest = AgreementRun.objects.filter(project=ranked, status=RunStatus.DONE).latest("id")
    careful_gold = latest.rater_scores.filter(rater__username__in=CAREFUL).values_list(
        "gold_accuracy", flat=True
    )
    measured = [accuracy for accuracy in careful_gold if accuracy is not None]
    assert measured and min(measured) > 0.6


def test_the_export_is_done_and_downloads_without_the_latent_quality(ranked, django_user_model):
    job = ExportJob.objects.get(project=ranked)
    assert (job.status, job.format, job.strategy) == (JobStatus.DONE, "trl", "all_pairs")
    assert job.rows > 0
    engineer = django_user_model.objects.get(username="engineer")
    client = APIClient()
    client.force_authenticate(engineer)
    response = client.get(f"/api/exports/{job.pk}/download/")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = [json.loads(line) for line in body.splitlines()]
    assert len(rows) == job.rows
    assert {"prompt", "chosen", "rejected"} <= set(rows[0])
    assert not any("quality" in key for row in rows for key in keys_of(row))
    assert job.file.name
    with exports_storage().open(job.file.name) as stored:
        assert stored.read().decode() == body


def test_latent_quality_stays_out_of_the_database(ranked, pairwise):
    responses = Response.objects.filter(prompt__project__in=[ranked, pairwise])
    assert not responses.exclude(metadata={}).exists()
    assert not ranked.prompts.exclude(metadata={}).exists()


def test_demo_logins_work_and_raters_still_have_tasks(ranked, pairwise, client):
    for username in ("lead", "rater1", "rater2", "rater3", "engineer"):
        assert client.login(username=username, password=services.DEMO_PASSWORD), username
    assert client.login(username="lead", password=services.DEMO_PASSWORD)
    assert client.get(f"/rate/{ranked.pk}/quality/").status_code == 200
    assert client.get(f"/exports/{ranked.pk}/").status_code == 200
    rater = Membership.objects.get(project=ranked, user__username="rater1").user
    for project in (ranked, pairwise):
        assignment = labeling_services.lease_next_assignment(project=project, rater=rater)
        assert assignment is not None, project.name
    assert not client.login(username=RANDOM_CLICKER, password=services.DEMO_PASSWORD)


def test_the_quality_page_shows_the_trend_and_the_flagged_raters(ranked, client):
    client.login(username="lead", password=services.DEMO_PASSWORD)
    page = client.get(f"/rate/{ranked.pk}/quality/").content.decode()
    assert RANDOM_CLICKER in page and ALWAYS_FIRST in page
    assert "<polyline" in page  # the agreement trend chart has a line, so several runs


def test_running_it_again_duplicates_nothing_and_prints_the_logins(ranked, pairwise, built):
    def counts() -> list[int]:
        return [
            Project.objects.count(),
            Ranking.objects.count(),
            AgreementRun.objects.count(),
            ExportJob.objects.count(),
            Invite.objects.count(),
            Flag.objects.count(),
        ]

    before = counts()
    output = io.StringIO()
    call_command("demo", stdout=output)
    assert counts() == before
    text = output.getvalue()
    for username in ("lead", "rater1", "engineer"):
        assert username in text
    assert "/join/" in text and "ranklab-demo" in text
    assert built["output"].count("flagged:") >= 2


def test_running_it_again_resets_a_changed_password(ranked, django_user_model):
    lead = django_user_model.objects.get(username="lead")
    lead.set_password("something-else-entirely")
    lead.save()
    services.demo_build()
    lead.refresh_from_db()
    assert lead.check_password(services.DEMO_PASSWORD)
    assert lead.is_staff
