from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from core.errors import NotAllowed
from labeling import services
from labeling.models import Assignment, AssignmentStatus, Membership, Prompt
from rankings.models import Ranking
from rankings.rating.services import ranking_submit


def whole_ranking(assignment: Assignment) -> list[list[int]]:
    return [[response_id] for response_id in assignment.shown_order]


@pytest.mark.django_db
def test_reloading_gives_the_same_task_back(imported, rater):
    first = services.lease_next_assignment(project=imported, rater=rater)
    again = services.lease_next_assignment(project=imported, rater=rater)
    assert first is not None and again is not None
    assert again.pk == first.pk
    assert Assignment.objects.filter(rater=rater).count() == 1


@pytest.mark.django_db
def test_shown_order_is_a_permutation_stored_per_assignment(imported, rater, rater2):
    first = services.lease_next_assignment(project=imported, rater=rater)
    second = services.lease_next_assignment(project=imported, rater=rater2)
    assert first.prompt_id == second.prompt_id
    expected = sorted(first.prompt.responses.values_list("id", flat=True))
    assert sorted(first.shown_order) == expected
    assert sorted(second.shown_order) == expected
    assert Assignment.objects.get(pk=first.pk).shown_order == first.shown_order


@pytest.mark.django_db
def test_expired_lease_returns_prompt_to_pool(imported, rater, rater2, make_user, add_member):
    imported.overlap = 1
    imported.save()
    first = services.lease_next_assignment(project=imported, rater=rater)
    other = services.lease_next_assignment(project=imported, rater=rater2)
    assert other.prompt_id != first.prompt_id
    Assignment.objects.filter(pk=first.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1),
        leased_at=timezone.now() - timedelta(hours=1),
    )
    third = add_member(make_user("rater3"))
    taken_over = services.lease_next_assignment(project=imported, rater=third)
    assert taken_over.prompt_id == first.prompt_id


@pytest.mark.django_db
def test_prompt_never_gets_more_than_overlap_rankings(imported, make_user, add_member):
    imported.overlap = 2
    imported.save()
    raters = [add_member(make_user(f"crowd{index}")) for index in range(6)]
    for rater in raters:
        while (
            assignment := services.lease_next_assignment(project=imported, rater=rater)
        ) is not None:
            ranking_submit(
                assignment_id=assignment.pk, rater=rater, ranking=whole_ranking(assignment)
            )
    for prompt in Prompt.objects.filter(project=imported):
        assert Ranking.objects.filter(prompt=prompt).count() == 2
        assert prompt.is_complete
    assert Ranking.objects.count() == 5 * 2


@pytest.mark.django_db
def test_paused_rater_gets_no_tasks_and_loses_live_lease(imported, rater, lead):
    services.lease_next_assignment(project=imported, rater=rater)
    services.member_update(project=imported, username=rater.username, status="paused")
    with pytest.raises(NotAllowed, match="paused"):
        services.lease_next_assignment(project=imported, rater=rater)
    assert not Assignment.objects.filter(rater=rater, expires_at__gt=timezone.now()).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_raters_never_share_a_live_lease_or_exceed_overlap(make_user, lead):
    project = services.project_create(creator=lead, name="Race", overlap=2)
    import json

    from tests.helpers import sample_records

    services.prompts_import(project=project, raw=json.dumps(sample_records(6)))
    raters = [make_user(f"racer{index}") for index in range(8)]
    Membership.objects.bulk_create([Membership(project=project, user=user) for user in raters])
    barrier = threading.Barrier(len(raters))
    errors: list[BaseException] = []

    def work(user) -> None:
        try:
            barrier.wait()
            for _ in range(10):
                assignment = services.lease_next_assignment(project=project, rater=user)
                if assignment is None:
                    break
                ranking_submit(
                    assignment_id=assignment.pk, rater=user, ranking=whole_ranking(assignment)
                )
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in raters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    per_prompt = {
        prompt.pk: Assignment.objects.filter(
            prompt=prompt, status=AssignmentStatus.SUBMITTED
        ).count()
        for prompt in Prompt.objects.filter(project=project)
    }
    assert per_prompt == {prompt_id: 2 for prompt_id in per_prompt}
    assert Ranking.objects.filter(project=project).count() == 12
    # No rater ranked the same prompt twice.
    pairs = list(Ranking.objects.values_list("prompt_id", "rater_id"))
    assert len(pairs) == len(set(pairs))


@pytest.mark.django_db(transaction=True)
def test_simultaneous_next_task_calls_get_distinct_leases(make_user, lead):
    project = services.project_create(creator=lead, name="Burst", overlap=1)
    import json

    from tests.helpers import sample_records

    services.prompts_import(project=project, raw=json.dumps(sample_records(20)))
    raters = [make_user(f"burst{index}") for index in range(10)]
    Membership.objects.bulk_create([Membership(project=project, user=user) for user in raters])
    barrier = threading.Barrier(len(raters))
    leased: list[int] = []
    lock = threading.Lock()

    def work(user) -> None:
        try:
            barrier.wait()
            assignment = services.lease_next_assignment(project=project, rater=user)
            with lock:
                leased.append(assignment.prompt_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in raters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(leased) == 10
    assert len(set(leased)) == 10


@pytest.mark.postgresql("row locks (FOR KEY SHARE from a second connection)")
@pytest.mark.django_db(transaction=True)
def test_a_key_share_lock_on_prompts_does_not_hide_them_from_the_queue(make_user, lead):
    """Foreign-key checks (e.g. a long agreement run inserting consensus rows) take KEY
    SHARE locks on prompts; leasing must still see those prompts as free."""
    import json

    import psycopg
    from django.conf import settings

    from tests.helpers import sample_records

    project = services.project_create(creator=lead, name="Locks", overlap=1)
    services.prompts_import(project=project, raw=json.dumps(sample_records(2)))
    rater = make_user("locked-out")
    Membership.objects.create(project=project, user=rater)
    database = settings.DATABASES["default"]
    other = psycopg.connect(
        dbname=connection.settings_dict["NAME"],
        user=database["USER"],
        host=database["HOST"],
        port=database["PORT"],
        password=database["PASSWORD"] or None,
    )
    try:
        other.execute(
            "SELECT id FROM labeling_prompt WHERE project_id = %s FOR KEY SHARE", [project.pk]
        )
        assignment = services.lease_next_assignment(project=project, rater=rater)
        assert assignment is not None
    finally:
        other.rollback()
        other.close()
