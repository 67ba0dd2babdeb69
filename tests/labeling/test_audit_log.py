"""The audit log: every lead and engineer action (settings old → new, members, invites,
imports, gold, flags, exports) is recorded with who and when, in the same transaction as
the action; it is append-only, shown on the project page and served paginated by the API."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core.errors import NotFound
from labeling import services as labeling_services
from labeling.models import AppendOnly, AuditEvent, Membership
from rankings.models import Flag
from rankings.quality import actions
from tests.helpers import sample_records

pytestmark = pytest.mark.django_db


def events(project, action: str | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.filter(project=project).order_by("id")
    return list(found.filter(action=action) if action else found)


def test_settings_changes_are_recorded_old_and_new_with_who(project, lead, api_for):
    response = api_for(lead).patch(
        f"/api/projects/{project.pk}/",
        {"overlap": 4, "allow_ties": False, "name": project.name},
        format="json",
    )
    assert response.status_code == 200
    [event] = events(project, "project.settings")
    assert event.actor == lead and event.actor_name == "lead"
    # Only what changed: the unchanged name is left out.
    assert event.changes == {
        "overlap": {"old": 2, "new": 4},
        "allow_ties": {"old": True, "new": False},
    }


def test_saving_settings_unchanged_records_nothing(project, lead, api_for):
    api_for(lead).patch(f"/api/projects/{project.pk}/", {"overlap": 2}, format="json")
    assert events(project, "project.settings") == []


def test_the_settings_form_records_the_change_too(project, lead):
    browser = Client()
    browser.force_login(lead)
    form = {
        "name": "Renamed",
        "overlap": 3,
        "lease_seconds": 600,
        "gold_rate": 0.1,
        "repeat_rate": 0,
        "repeat_delay_seconds": 1800,
        "agreement_every_n_rankings": 50,
        "allow_ties": "on",
    }
    assert browser.post(f"/projects/{project.pk}/settings/", form).status_code == 302
    [event] = events(project, "project.settings")
    assert event.changes["name"] == {"old": "Helpfulness", "new": "Renamed"}
    assert event.changes["overlap"] == {"old": 2, "new": 3}


def test_member_changes_invites_imports_and_gold_are_recorded(project, lead, rater, api_for):
    client = api_for(lead)
    client.patch(
        f"/api/projects/{project.pk}/members/{rater.username}/", {"status": "paused"}, format="json"
    )
    client.post(f"/api/projects/{project.pk}/invites/", {"role": "engineer"}, format="json")
    body = json.dumps(sample_records(2))
    client.post(f"/api/projects/{project.pk}/prompts/", body, content_type="application/json")
    prompt = project.prompts.order_by("id").first()
    ids = list(prompt.responses.order_by("position").values_list("id", flat=True))
    client.put(
        f"/api/projects/{project.pk}/prompts/{prompt.pk}/gold/",
        {"gold_ranking": [[ids[0]], ids[1:]]},
        format="json",
    )
    client.put(
        f"/api/projects/{project.pk}/prompts/{prompt.pk}/gold/",
        {"gold_ranking": None},
        format="json",
    )
    recorded = [(event.action, event.target) for event in events(project)]
    assert recorded[0] == ("project.create", "Helpfulness")
    assert ("member.update", "rater1") in recorded
    assert [action for action, _ in recorded[2:]] == [
        "invite.create",
        "prompts.import",
        "gold.set",
        "gold.clear",
    ]
    member = events(project, "member.update")[0]
    assert member.changes == {"status": {"old": "active", "new": "paused"}}
    assert events(project, "prompts.import")[0].changes["created"] == 2
    assert events(project, "gold.set")[0].changes["gold_ranking"]["new"] == [[ids[0]], ids[1:]]


def test_a_failed_action_leaves_no_record(project, lead):
    with pytest.raises(NotFound):
        labeling_services.member_update(
            project=project, username="nobody", status="paused", by=lead
        )
    labeling_services.prompts_import(project=project, raw=json.dumps(sample_records(1)), by=lead)
    with pytest.raises(Exception):  # noqa: B017  (the same external id again: refused)
        labeling_services.prompts_import(
            project=project, raw=json.dumps(sample_records(1)), by=lead
        )
    assert [event.action for event in events(project)] == ["project.create", "prompts.import"]


@pytest.fixture
def flag(project, rater):
    return Flag.objects.create(project=project, rater=rater, code="TOO_FAST", evidence={})


def test_flag_actions_are_recorded(project, lead, rater, flag, make_user, add_member):
    actions.flag_dismiss(flag=flag, by=lead, note="reads fast")
    other = add_member(make_user("rater9"))
    second = Flag.objects.create(project=project, rater=other, code="TOO_FAST", evidence={})
    actions.flag_exclude_rater(flag=second, by=lead, note="clicker")
    recorded = [(event.action, event.target) for event in events(project)][1:]
    assert recorded[0] == ("flag.dismiss", "rater1")
    assert events(project, "flag.dismiss")[0].changes["note"] == "reads fast"
    assert ("flag.exclude_rater", "rater9") in recorded
    assert ("flag.pause_rater", "rater9") in recorded
    member_changes = [event.changes for event in events(project, "member.update")]
    assert {"excluded": {"old": False, "new": True}} in member_changes
    assert {"status": {"old": "active", "new": "paused"}} in member_changes
    assert all(event.actor == lead for event in events(project)[1:])


def test_export_created_and_deleted_are_recorded(imported, lead, api_for, settings, tmp_path):
    from exports.models import ExportJob

    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    client = api_for(lead)
    created = client.post(
        f"/api/projects/{imported.pk}/exports/", {"format": "trl", "min_raters": 1}, format="json"
    )
    assert created.status_code == 202, created.content
    export_id = created.json()["id"]
    [made] = events(imported, "export.create")
    assert made.target == f"export {export_id}" and made.actor == lead
    assert made.changes["format"] == "trl" and made.changes["min_raters"] == 1
    # A finished export with a file (its writing is the exports tests' business).
    ExportJob.objects.filter(pk=export_id).update(status="done", file="made-up.jsonl")
    assert client.delete(f"/api/exports/{export_id}/file/").status_code == 200
    [deleted] = events(imported, "export.delete")
    assert deleted.target == f"export {export_id}"
    assert deleted.changes["files"] == ["made-up.jsonl"]


def test_the_quality_rules_pausing_a_rater_is_recorded_as_the_system(project, rater):
    labeling_services.member_update(project=project, username=rater.username, status="paused")
    [event] = events(project, "member.update")
    assert event.actor is None and event.actor_name == ""


# Append-only --------------------------------------------------------------------------------


def test_audit_events_cannot_be_changed_or_deleted(project, lead):
    event = events(project)[0]
    event.target = "rewritten"
    with pytest.raises(AppendOnly):
        event.save()
    with pytest.raises(AppendOnly):
        event.delete()
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(target="rewritten")
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).target == "Helpfulness"


def test_the_record_outlives_the_people_and_projects_it_names(project, lead, rater, api_for):
    api_for(lead).patch(f"/api/projects/{project.pk}/", {"overlap": 3}, format="json")
    event_ids = [event.pk for event in events(project)]
    Membership.objects.filter(project=project).delete()
    project.delete()
    assert AuditEvent.objects.filter(pk__in=event_ids).count() == len(event_ids)
    assert AuditEvent.objects.get(pk=event_ids[-1]).actor_name == "lead"


def test_the_admin_shows_the_log_read_only(admin_client, project):
    event = events(project)[0]
    assert admin_client.get("/admin/labeling/auditevent/").status_code == 200
    change = admin_client.get(f"/admin/labeling/auditevent/{event.pk}/change/")
    assert change.status_code == 200 and b'name="_save"' not in change.content
    assert admin_client.post(f"/admin/labeling/auditevent/{event.pk}/delete/").status_code == 403
    assert admin_client.get("/admin/labeling/auditevent/add/").status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


# Where it is shown ---------------------------------------------------------------------------


def test_the_api_serves_the_log_newest_first_in_pages(project, lead, api_for):
    for overlap in range(3, 63):
        labeling_services.project_update(project=project, by=lead, overlap=overlap)
    client = api_for(lead)
    first = client.get(f"/api/projects/{project.pk}/audit/")
    assert first.status_code == 200
    page = first.json()
    assert len(page["results"]) == 50
    newest = page["results"][0]
    assert newest["action"] == "project.settings" and newest["actor"] == "lead"
    assert newest["changes"] == {"overlap": {"old": 61, "new": 62}}
    rest = client.get(page["next"]).json()
    assert len(rest["results"]) == 11 and rest["next"] is None
    ids = [row["id"] for row in page["results"] + rest["results"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 61


def test_the_api_log_is_for_leads_and_engineers_only(
    project, lead, rater, engineer, outsider, api_for
):
    url = f"/api/projects/{project.pk}/audit/"
    assert api_for(engineer).get(url).status_code == 200
    assert api_for(rater).get(url).status_code == 403
    assert api_for(outsider).get(url).status_code == 404
    other = labeling_services.project_create(creator=outsider, name="Other")
    assert api_for(lead).get(f"/api/projects/{other.pk}/audit/").status_code == 404


def test_the_project_page_shows_the_log(project, lead, rater):
    labeling_services.member_update(
        project=project, username=rater.username, excluded=True, by=lead
    )
    browser = Client()
    browser.force_login(lead)
    page = browser.get(f"/projects/{project.pk}/").content.decode()
    assert 'id="audit"' in page
    assert "Member changed" in page and "excluded: False → True" in page


def test_user_deletion_keeps_the_actor_name(project, lead, make_user, add_member):
    engineer = add_member(make_user("temp-engineer"), "engineer")
    labeling_services.prompts_import(
        project=project, raw=json.dumps(sample_records(1)), by=engineer
    )
    get_user_model().objects.filter(pk=engineer.pk).delete()
    [event] = events(project, "prompts.import")
    assert event.actor_name == "temp-engineer"
