"""The rater loop's written-out statements say what the ORM definitions say: the same rows,
converted the same way, and the same rule for which assignments hold an overlap slot."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.rows import Columns, Statement, run_together
from labeling import services
from labeling.accounts.authentication import token_with_user
from labeling.accounts.models import ApiToken
from labeling.accounts.services import api_token_create
from labeling.models import Assignment, AssignmentStatus, Membership, Project, Prompt
from labeling.services import queue_sql
from tests.helpers import sample_records

pytestmark = pytest.mark.django_db


def field_values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.fields}


def read_by_hand(model, pk: int):
    columns = Columns(model, "x")
    sql = f"SELECT {columns.select(connection)} FROM {model._meta.db_table} x WHERE x.id = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        return columns.build(cursor.fetchone(), 0, connection)


def test_rows_read_by_hand_are_the_instances_the_orm_reads(project, rater):
    """JSON, booleans, datetimes and nulls come back as the ORM gives them, on each database."""
    project.rubric = [{"key": "helpful", "label": "Helpful", "scale": 5}]
    project.guidelines_updated_at = timezone.now()
    project.allow_ties = False
    project.save()
    services.prompts_import(project=project, raw=json.dumps(sample_records(2)))
    prompt = Prompt.objects.filter(project=project).first()
    assert prompt is not None
    Prompt.objects.filter(pk=prompt.pk).update(archived_at=timezone.now(), extra_raters=2)
    for model, pk in (
        (Project, project.pk),
        (Prompt, prompt.pk),
        (Membership, Membership.objects.get(project=project, user=rater).pk),
    ):
        by_hand = read_by_hand(model, pk)
        assert field_values(by_hand) == field_values(model.objects.get(pk=pk))
        assert not by_hand._state.adding and by_hand._state.db == connection.alias


def test_the_token_lookup_reads_the_token_and_its_user(rater):
    secret = api_token_create(user=rater, name="t").secret
    token = token_with_user(secret)
    assert token is not None
    assert field_values(token) == field_values(ApiToken.objects.get(pk=token.pk))
    assert field_values(token.user) == field_values(type(rater).objects.get(pk=rater.pk))
    assert token_with_user(secret + "x") is None


def test_occupied_slots_are_the_orm_rule_on_random_assignments(project, make_crowd):
    """`queue_sql.OCCUPIED` and `leases.occupied_assignments` pick the same assignments."""
    services.prompts_import(project=project, raw=json.dumps(sample_records(12)))
    prompts = list(Prompt.objects.filter(project=project))
    crowd = make_crowd(6)
    rng = random.Random(7)
    now = timezone.now()
    for prompt in prompts:
        for rater in rng.sample(crowd, 4):
            leased = now - timedelta(minutes=rng.randint(1, 30))
            Assignment.objects.create(
                project=project,
                prompt=prompt,
                rater=rater,
                shown_order=[],
                status=rng.choice(AssignmentStatus.values),
                leased_at=leased,
                expires_at=leased + timedelta(minutes=rng.randint(1, 60)),
                finished_at=rng.choice([None, leased + timedelta(seconds=30)]),
                is_repeat=rng.random() < 0.2,
            )
    expected = set(
        Assignment.objects.filter(services.occupied_assignments(now=now)).values_list(
            "id", flat=True
        )
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT a.id FROM labeling_assignment a WHERE {queue_sql.OCCUPIED}",
            {"now": connection.ops.adapt_datetimefield_value(now)},
        )
        by_hand = {row[0] for row in cursor.fetchall()}
    assert 0 < len(expected) < Assignment.objects.count()
    assert by_hand == expected


def lease_state(read: Membership | None) -> tuple[int | None, bool]:
    """What the membership read says of the rater's leases: (live lease id, lapsed reopened)."""
    assert read is not None
    return read.__dict__["live_lease_id"], read.__dict__["has_lapsed_reopened"]


def test_the_membership_read_says_whether_a_live_lease_and_a_lapsed_reopened_task_exist(
    imported, rater
):
    now = timezone.now()
    read = queue_sql.membership_for_tasks(project_id=imported.pk, rater_id=rater.pk, now=now)
    assert lease_state(read) == (None, False)
    assert read is not None
    assert read.project.pk == imported.pk and read.project.name == imported.name
    lease = services.lease_next_assignment(project=imported, rater=rater)
    assert lease is not None
    read = queue_sql.membership_for_tasks(project_id=imported.pk, rater_id=rater.pk, now=now)
    assert lease_state(read) == (lease.pk, False)
    # Reopened (finished_at kept) and run out: lapsed, and no longer live.
    Assignment.objects.filter(pk=lease.pk).update(
        finished_at=now - timedelta(minutes=5),
        leased_at=now - timedelta(minutes=20),
        expires_at=now - timedelta(minutes=1),
    )
    read = queue_sql.membership_for_tasks(project_id=imported.pk, rater_id=rater.pk, now=now)
    assert lease_state(read) == (None, True)
    elsewhere = imported.pk + 1000
    assert queue_sql.membership_for_tasks(project_id=elsewhere, rater_id=rater.pk, now=now) is None


def test_the_scan_skips_the_prompts_it_is_told_to_and_those_already_full(imported, rater, rater2):
    prompts = list(Prompt.objects.filter(project=imported).order_by("id"))
    now = timezone.now()

    def scan(skip=(), after=0):
        found = queue_sql.lock_next_open_prompt(
            project=imported, rater_id=rater.pk, now=now, min_responses=2, skip=skip, after=after
        )
        return None if found is None else found.pk

    assert scan() == prompts[0].pk
    assert scan(skip=[prompts[0].pk, prompts[1].pk]) == prompts[2].pk
    assert scan(after=prompts[3].pk) == prompts[4].pk
    assert scan(after=prompts[4].pk) is None
    # Overlap 2: two other raters' live leases fill the first prompt.
    for other in (rater2,):
        Assignment.objects.create(
            project=imported,
            prompt=prompts[0],
            rater=other,
            shown_order=[],
            leased_at=now,
            expires_at=now + timedelta(minutes=5),
        )
    Prompt.objects.filter(pk=prompts[0].pk).update(extra_raters=0)
    imported.overlap = 1
    assert scan() == prompts[1].pk


@pytest.mark.parametrize("strength", [None, 2])
def test_a_row_inserted_by_hand_is_the_row_the_orm_inserts(project, rater, rater2, strength):
    """`Columns.insert` stores what `Model.objects.create` stores: defaults, JSON, floats,
    nulls, on each database; the instance comes back saved, with its key."""
    from rankings.models import Ranking
    from rankings.rating.services import RANKING

    services.prompts_import(project=project, raw=json.dumps(sample_records(1)))
    prompt = Prompt.objects.get(project=project)
    shown = list(prompt.responses.values_list("id", flat=True))
    leases = [
        Assignment.objects.create(
            project=project,
            prompt=prompt,
            rater=user,
            shown_order=shown,
            expires_at=timezone.now() + timedelta(minutes=5),
        )
        for user in (rater, rater2)
    ]
    values = {
        "project_id": project.pk,
        "prompt_id": prompt.pk,
        "groups": [[shown[1]], [shown[0], *shown[2:]]],
        "ratings": {str(shown[0]): {"helpful": 4}},
        "rationale": "clearer <b>and</b> shorter",
        "seconds": 12.5,
        "strength": strength,
    }
    by_orm = Ranking.objects.create(assignment=leases[0], rater=rater, **values)
    by_hand = RANKING.insert(Ranking(assignment=leases[1], rater=rater2, **values), connection)

    assert by_hand.pk is not None and not by_hand._state.adding
    assert by_hand._state.db == connection.alias
    stored = {ranking.pk: field_values(ranking) for ranking in Ranking.objects.all()}
    orm_row, hand_row = stored.pop(by_orm.pk), stored.pop(by_hand.pk)
    assert stored == {}
    for row in (orm_row, hand_row):
        row.pop("id"), row.pop("assignment_id"), row.pop("rater_id")
        assert abs(row.pop("created_at") - timezone.now()) < timedelta(minutes=1)
    assert hand_row == orm_row
    assert hand_row["revisions"] == [] and hand_row["updated_at"] is None


def test_statements_run_together_each_get_their_own_parameters(imported):
    """Two statements naming the same parameter each get their own value, in one round
    trip on PostgreSQL and one after the other elsewhere; the first's row comes back."""
    first, second = Prompt.objects.filter(project=imported).order_by("pk")[:2]
    retag = "UPDATE labeling_prompt SET external_id = %(tag)s WHERE id = %(prompt)s"
    statements = [
        Statement(f"{retag} RETURNING id", {"tag": "one", "prompt": first.pk}),
        Statement(retag, {"tag": "two", "prompt": second.pk}),
    ]

    with CaptureQueriesContext(connection) as queries:
        row = run_together(statements, connection)

    assert row == (first.pk,)
    tags = dict(
        Prompt.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "external_id")
    )
    assert tags == {first.pk: "one", second.pk: "two"}
    assert len(queries) == (1 if connection.vendor == "postgresql" else 2)


@pytest.mark.parametrize("overlap", [1, 2, 3])
def test_a_submit_marks_its_prompt_complete_on_the_submit_that_fills_it(
    project, make_crowd, overlap
):
    """The ranking's INSERT with the assignment's and the prompt's UPDATEs (one statement on
    PostgreSQL, where none sees the others' changes): the prompt is complete exactly when
    its submitted rankings reach the overlap; a repeat (a consistency check) never counts."""
    from rankings.models import Ranking
    from rankings.rating.services import RANKING

    project.overlap = overlap
    project.save(update_fields=["overlap"])
    services.prompts_import(project=project, raw=json.dumps(sample_records(1)))
    prompt = Prompt.objects.get(project=project)
    shown = list(prompt.responses.values_list("id", flat=True))
    raters = make_crowd(overlap)

    def submit(rater, *, is_repeat: bool = False) -> None:
        lease = Assignment.objects.create(
            project=project,
            prompt=prompt,
            rater=rater,
            shown_order=shown,
            is_repeat=is_repeat,
            expires_at=timezone.now() + timedelta(minutes=5),
        )
        lease.project = project
        ranking = Ranking(
            assignment=lease,
            project_id=project.pk,
            prompt_id=prompt.pk,
            rater=rater,
            groups=[[pk] for pk in shown],
        )
        marking = services.assignment_submitted_statements(assignment=lease)
        RANKING.insert(ranking, connection, along=marking)
        lease.refresh_from_db()
        assert lease.status == AssignmentStatus.SUBMITTED and lease.finished_at is not None

    completeness = []
    for rater in raters:
        submit(rater, is_repeat=False)
        submit(rater, is_repeat=True)
        prompt.refresh_from_db()
        completeness.append(prompt.is_complete)

    assert completeness == [False] * (overlap - 1) + [True]
    assert Ranking.objects.filter(prompt=prompt).count() == 2 * overlap


def test_statements_run_together_without_returning_answer_none(imported):
    first, second = Prompt.objects.filter(project=imported).order_by("pk")[:2]
    retag = "UPDATE labeling_prompt SET external_id = %(tag)s WHERE id = %(prompt)s"

    row = run_together(
        [
            Statement(retag, {"tag": "one", "prompt": first.pk}),
            Statement(retag, {"tag": "two", "prompt": second.pk}),
        ],
        connection,
    )

    assert row is None
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.external_id, second.external_id) == ("one", "two")
