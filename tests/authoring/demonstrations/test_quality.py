"""Reviewer decisions as a rater-quality signal: the DEMONSTRATIONS_REJECTED flag."""

from __future__ import annotations

import random
from unittest import mock

import pytest

from authoring.demonstrations import services
from authoring.demonstrations.edits import edit_distance, edit_share, unified_diff
from authoring.demonstrations.quality import WriterReviews, clearly_worse, rejected_finding
from authoring.demonstrations.reviews import review_submit
from labeling.models import Membership, MemberStatus
from rankings.models import Flag, FlagCode, FlagStatus
from tests.authoring.demonstrations.helpers import make_demo_project
from tests.helpers import import_prompts, sample_records

CODE = FlagCode.DEMONSTRATIONS_REJECTED


def _levenshtein(before: str, after: str) -> int:
    """Textbook dynamic programme, the reference for rapidfuzz."""
    previous = list(range(len(after) + 1))
    for i, left in enumerate(before, start=1):
        current = [i]
        for j, right in enumerate(after, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right))
            )
        previous = current
    return previous[-1]


def test_edit_distance_matches_the_textbook_levenshtein_on_random_texts():
    rng = random.Random(11)
    for _ in range(200):
        before = "".join(rng.choice("ab c\né") for _ in range(rng.randint(0, 30)))
        after = "".join(rng.choice("ab c\né") for _ in range(rng.randint(0, 30)))
        assert edit_distance(before, after) == _levenshtein(before, after)
        longest = max(len(before), len(after))
        assert edit_share(before, after) == (
            0.0 if not longest else _levenshtein(before, after) / longest
        )


def test_unified_diff_round_trips_through_the_lines_it_names():
    before, after = "one\ntwo\nthree", "one\n2\nthree\nfour"
    diff = unified_diff(before, after, before_name="a", after_name="b")
    assert diff.startswith("--- a\n+++ b\n")
    assert "-two\n" in diff and "+2\n" in diff and "+four\n" in diff
    assert "\\ No newline at end of file" in diff
    assert unified_diff(before, before, before_name="a", after_name="b") == ""


def test_rule_needs_the_minimum_reviews():
    few = WriterReviews(reviewed=9, accepted=0, edited=0, rejected=9, mean_edit_share=None)
    assert rejected_finding(few, min_reviews=10, max_rejected_share=0.3) is None


def test_rule_fires_above_the_share_with_the_evidence():
    reviews = WriterReviews(
        reviewed=10, accepted=5, edited=1, rejected=4, mean_edit_share=0.25,
        rejected_examples=((7, "off topic"),),
    )  # fmt: skip
    finding = rejected_finding(reviews, min_reviews=10, max_rejected_share=0.3)
    assert finding is not None
    fired, evidence = finding
    assert fired
    assert evidence["rejected_share"] == 0.4 and evidence["reviewed"] == 10
    assert evidence["rejected_examples"] == [{"demonstration_id": 7, "reason": "off topic"}]
    assert "4 of 10" in evidence["summary"] and "25%" in evidence["summary"]
    calm = WriterReviews(reviewed=10, accepted=7, edited=0, rejected=3, mean_edit_share=None)
    assert rejected_finding(calm, min_reviews=10, max_rejected_share=0.3) == (False, mock.ANY)


def test_clearly_worse_by_share_or_twice_the_reviews():
    before = {"rejected_share": 0.4, "reviewed": 10}
    assert not clearly_worse(before, {"rejected_share": 0.45, "reviewed": 15}, worse_by=0.1)
    assert clearly_worse(before, {"rejected_share": 0.5, "reviewed": 12}, worse_by=0.1)
    assert clearly_worse(before, {"rejected_share": 0.41, "reviewed": 20}, worse_by=0.1)


@pytest.fixture
def crew(lead, make_user, join):
    project = make_demo_project(lead, overlap=1, flag_min_reviews=4, flag_max_rejected_share=0.5)
    import_prompts(project, sample_records(12, responses=0))
    writer, reviewer = join(project, make_user("writer"), make_user("reviewer"))
    return project, writer, reviewer


def _write_and_review(project, writer, reviewer, decisions):
    for decision in decisions:
        task = services.task_for_rater(project=project, rater=writer)
        services.demonstration_submit(assignment_id=task.assignment.pk, rater=writer, text="reply")
        review = services.task_for_rater(project=project, rater=reviewer).review
        body = {"decision": decision}
        if decision == "reject":
            body["reason"] = "made up facts"
        if decision == "edit":
            body["text"] = "a better reply"
        review_submit(review_id=review.pk, reviewer=reviewer, **body)


@pytest.mark.django_db
def test_writer_often_rejected_is_flagged_with_the_evidence(crew, api_for, lead):
    project, writer, reviewer = crew
    _write_and_review(project, writer, reviewer, ["reject", "reject", "accept"])
    assert not Flag.objects.exists()  # 3 reviews: below the minimum of 4
    _write_and_review(project, writer, reviewer, ["reject"])
    flag = Flag.objects.get(code=CODE)
    assert flag.rater == writer and flag.status == FlagStatus.OPEN
    assert flag.evidence["rejected"] == 3 and flag.evidence["reviewed"] == 4
    assert flag.evidence["holds"] is True
    assert flag.evidence["rejected_examples"][0]["reason"] == "made up facts"
    assert not Flag.objects.filter(rater=reviewer).exists()
    # The lead sees it where every flag is, and it clears (holds false) as work improves.
    lead.is_staff = True
    lead.save(update_fields=["is_staff"])
    listed = api_for(lead).get(f"/api/projects/{project.pk}/flags/").json()
    rows = listed["results"] if isinstance(listed, dict) and "results" in listed else listed
    assert any(row["code"] == CODE for row in rows)
    _write_and_review(project, writer, reviewer, ["accept", "edit", "accept"])
    flag.refresh_from_db()
    assert flag.evidence["holds"] is False and flag.evidence["reviewed"] == 7
    assert flag.evidence["mean_edit_share"] is not None
    assert Flag.objects.filter(code=CODE).count() == 1


@pytest.mark.django_db
def test_dismissed_flag_stays_closed_until_clearly_worse(crew):
    project, writer, reviewer = crew
    _write_and_review(project, writer, reviewer, ["reject", "reject", "reject", "accept"])
    Flag.objects.filter(code=CODE).update(status=FlagStatus.DISMISSED)
    _write_and_review(project, writer, reviewer, ["accept", "reject"])  # 4 of 6: not worse
    assert not Flag.objects.filter(code=CODE, status=FlagStatus.OPEN).exists()
    _write_and_review(project, writer, reviewer, ["reject", "reject"])  # 6 of 8: worse by 0.15
    assert Flag.objects.filter(code=CODE, status=FlagStatus.OPEN).count() == 1


@pytest.mark.django_db
def test_paused_writer_keeps_their_flag_and_gets_no_tasks(crew):
    project, writer, reviewer = crew
    _write_and_review(project, writer, reviewer, ["reject"] * 4)
    Membership.objects.filter(project=project, user=writer).update(status=MemberStatus.PAUSED)
    from core.errors import NotAllowed

    with pytest.raises(NotAllowed):
        services.task_for_rater(project=project, rater=writer)
    assert Flag.objects.filter(code=CODE, rater=writer).exists()
