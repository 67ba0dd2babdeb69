"""The rubric builder posts to the one validator (labeling/rubric.py), which now keeps a
scale's optional end labels; the settings page loads the builder as a static file and
keeps the JSON textarea as its no-JavaScript fallback."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from labeling.models import Project
from labeling.rubric import RubricProblem, clean_rubric

SCALE = {"key": "accuracy", "kind": "scale", "min": 1, "max": 5}


def test_end_labels_are_kept_trimmed_and_only_when_given():
    (item,) = clean_rubric([{**SCALE, "min_label": " Wrong ", "max_label": "Exact"}])
    assert item["min_label"] == "Wrong" and item["max_label"] == "Exact"
    (bare,) = clean_rubric([{**SCALE, "min_label": "", "max_label": None}])
    assert "min_label" not in bare and "max_label" not in bare
    (box,) = clean_rubric([{"key": "unsafe", "kind": "checkbox", "min_label": "x"}])
    assert "min_label" not in box


@pytest.mark.parametrize("bad", [5, ["x"], "a" * 41, "nul\x00"])
def test_bad_end_labels_are_refused(bad):
    with pytest.raises(RubricProblem, match="min_label"):
        clean_rubric([{**SCALE, "min_label": bad}])


@pytest.mark.django_db
def test_the_api_accepts_end_labels_and_refuses_bad_ones(api_for, lead, project):
    api = api_for(lead)
    rubric = [{**SCALE, "label": "Accuracy", "required": True, "max_label": "Exact"}]
    ok = api.patch(f"/api/projects/{project.pk}/", {"rubric": rubric}, format="json")
    assert ok.status_code == 200
    assert Project.objects.get(pk=project.pk).rubric[0]["max_label"] == "Exact"
    bad = api.patch(
        f"/api/projects/{project.pk}/",
        {"rubric": [{**SCALE, "max_label": "x" * 50}]},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["field"] == "rubric"


@pytest.mark.django_db
def test_the_settings_page_loads_the_builder_without_inline_code(lead, project):
    client = Client()
    client.force_login(lead)
    html = client.get(f"/projects/{project.pk}/").content.decode()
    assert 'src="/static/ranklab/rubric_builder.js"' in html
    assert 'data-rubric-builder-for="id_rubric"' in html
    assert 'name="rubric"' in html  # the no-JavaScript fallback
    assert "<script>" not in html and " style=" not in html
    preset = html.split('data-preset-hhh="', 1)[1].split('"', 1)[0].replace("&quot;", '"')
    assert json.loads(preset) == clean_rubric("hhh")


def test_the_rater_sees_the_end_labels_beside_the_scale(imported, rater):
    labeled = {**SCALE, "min_label": "Useless <b>", "max_label": "Exact"}
    Project.objects.filter(pk=imported.pk).update(rubric=[labeled])
    client = Client()
    client.force_login(rater)
    html = client.get(f"/rate/{imported.pk}/").content.decode()
    low, high = labeled["min"], labeled["max"]
    assert f"{low} Useless &lt;b&gt; \u2013 {high} Exact" in html
