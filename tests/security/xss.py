"""Hostile text for the XSS tests: payloads, a project full of them, and an HTML checker."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

from labeling import services as labeling_services
from labeling.accounts.services import api_token_create
from labeling.models import AuditAction, Invite, Membership, Project, Prompt, Role
from labeling.services.audit import audit_record
from llm.models import GenerationJob
from rankings.models import Flag
from tests.factories import RankingFactory
from tests.llm.helpers import make_endpoint

PAYLOADS = [
    "<script>alert('xss1')</script>",
    "<img src=x onerror=alert('xss2')>",
    "<svg onload=alert('xss3')>",
    '"><script>alert("xss4")</script>',
    "'><img src=x onerror=alert(5)>",
    "<a href=\"javascript:alert('xss6')\">click</a>",
    "[click me](javascript:alert('xss7'))",
    "[x](JaVaScRiPt:alert(8))",
    '<div style="background:url(javascript:alert(9))">s</div>',
    '<div style="width:expression(alert(10))">e</div>',
    "&lt;script&gt;alert(11)&lt;/script&gt;",
    "&#60;img src=x onerror=alert(12)&#62;",
    "</textarea><script>alert(13)</script>",
    "</title><script>alert(14)</script>",
    "{{7*7}} {% debug %} ${alert(15)}",
    "\u202egnp.exe<script>alert(16)</script>",
    "<iframe src=\"javascript:alert('xss17')\"></iframe>",
    "<body onload=alert(18)>",
    "<input autofocus onfocus=alert(19)>",
    '![img](x" onerror="alert(20))',
]


def _short(text: str, limit: int) -> str:
    return text[:limit]


def hostile_project(*, lead: Any, rater: Any, engineer: Any) -> dict[str, Any]:
    """A project whose every user-controlled text field carries the payloads."""
    everything = "\n\n".join(PAYLOADS)
    project = labeling_services.project_create(
        creator=lead, name=_short("XSS " + PAYLOADS[1], 200), overlap=2
    )
    Project.objects.filter(pk=project.pk).update(
        description=everything,
        guidelines=everything,
        rubric=[
            {"key": f"k{index}", "label": _short(payload, 80), "kind": "checkbox"}
            for index, payload in enumerate(PAYLOADS[:6])
        ],
    )
    project.refresh_from_db()
    Membership.objects.create(project=project, user=rater, role=Role.RATER)
    Membership.objects.create(project=project, user=engineer, role=Role.ENGINEER)
    records = [
        {
            "external_id": "all-payloads",
            "prompt": everything,
            "metadata": {payload: payload for payload in PAYLOADS},
            "responses": [
                {"text": everything, "model": _short(PAYLOADS[slot], 200)} for slot in range(3)
            ],
        }
    ] + [
        {
            "external_id": _short(payload, 200),
            "prompt": payload,
            "metadata": {"note": payload},
            "responses": [
                {"text": payload, "model": _short(payload, 200), "metadata": {payload: payload}},
                {"text": f"plain {index}", "model": _short(payload, 200)},
            ],
        }
        for index, payload in enumerate(PAYLOADS)
    ]
    labeling_services.prompts_import(project=project, raw=json.dumps(records))
    prompts = list(Prompt.objects.filter(project=project).order_by("id"))
    for index, prompt in enumerate(prompts[1:6]):  # rankings with rationales and skip reasons
        ranking = RankingFactory.create(prompt=prompt, rater=engineer, rationale=PAYLOADS[index])
        assignment = ranking.assignment
        assignment.skip_reason = PAYLOADS[-index - 1]
        assignment.save(update_fields=["skip_reason"])
    api_token_create(user=lead, name=_short(PAYLOADS[2], 100))
    Invite.objects.create(project=project, created_by=lead)
    Flag.objects.create(
        project=project, rater=rater, code="TOO_FAST", note=_short(PAYLOADS[3], 500)
    )
    endpoint = make_endpoint(
        project, "http://127.0.0.1:9/v1", name=_short(PAYLOADS[4], 100), model=PAYLOADS[5]
    )
    GenerationJob.objects.create(project=project, created_by=lead, error=PAYLOADS[6])
    for payload in PAYLOADS[:5]:
        audit_record(
            action=AuditAction.PROJECT_SETTINGS,
            actor=lead,
            project=project,
            target=_short(payload, 200),
            changes={"name": {"old": payload, "new": payload}},
        )
    return {"project": project, "prompt": prompts[0], "endpoint": endpoint}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def _check(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            source = values.get("src") or ""
            kind = values.get("type") or ""
            if not (source.startswith("/static/") or kind == "application/json"):
                self.problems.append(f"a <script> not the site's own: {attrs}")
        if tag in ("iframe", "object", "embed"):
            self.problems.append(f"an injected <{tag}>: {attrs}")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"an event-handler attribute on <{tag}>: {name}={value}")
            flat = re.sub(r"[\s\x00-\x1f]", "", (value or "")).lower()
            if name in ("href", "src", "action", "formaction", "xlink:href", "data") and (
                flat.startswith("javascript:") or flat.startswith("vbscript:")
            ):
                self.problems.append(f"a script URL on <{tag}>: {name}={value}")
            if name == "style" and ("expression(" in flat or "javascript:" in flat):
                self.problems.append(f"a scripted style on <{tag}>: {value}")


def html_problems(html: str) -> list[str]:
    """What an injected payload would leave in the page, if it were not escaped."""
    collector = _Collector()
    collector.feed(html)
    problems = collector.problems
    for payload in PAYLOADS:
        if "<" in payload and payload in html:
            problems.append(f"raw payload markup in the page: {payload!r}")
    return problems
