"""JSON request bodies: nesting and size limits are clear 400/413 errors, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_deeply_nested_json_is_a_400_not_a_500(api_for, lead, project):
    body = '{"name": ' + "[" * 20_000 + "]" * 20_000 + "}"
    response = api_for(lead).patch(
        f"/api/projects/{project.pk}/", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_a_body_over_the_limit_is_a_413_naming_it(api_for, lead, project, settings):
    settings.API_JSON_MAX_BYTES = 1000
    body = '{"description": "' + "x" * 2000 + '"}'
    response = api_for(lead).patch(
        f"/api/projects/{project.pk}/", body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json() == {
        "detail": "the JSON body is larger than the limit of 1000 bytes",
        "code": "too_large",
    }


def test_ordinary_json_still_parses(api_for, lead, project):
    response = api_for(lead).patch(
        f"/api/projects/{project.pk}/", {"description": "Rank for helpfulness"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["description"] == "Rank for helpfulness"
