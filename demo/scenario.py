"""The demo's projects as written in ``demo/data/*.json``: settings, prompts, responses and
each response's latent quality. No Django: the file is read into frozen dataclasses.

The latent quality, the flaws and the notes exist only for the simulated crowd; they are
never imported (nothing a lead, a rater or an export reads can reveal them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

ASSISTANT = "assistant.json"
PAIRWISE = "pairwise.json"
SCENARIO_FILES = (ASSISTANT, PAIRWISE)

# Flaws a response may have; the simulated raters' rubric ratings follow them.
INACCURATE = "inaccurate"
UNSAFE = "unsafe"
FLAWS = frozenset({INACCURATE, UNSAFE})


@dataclass(frozen=True)
class DemoResponse:
    text: str
    model: str
    quality: float  # latent, 0 (useless or harmful) to 1 (ideal)
    note: str  # why a careful rater likes or dislikes it: a verb phrase, "gives …"
    flaws: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DemoPrompt:
    external_id: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    responses: tuple[DemoResponse, ...]
    gold: bool = False

    def import_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class CrowdPlan:
    """How much of the project the simulated crowd ranks before the humans arrive."""

    open_for_humans: int  # prompts left one ranking short of the overlap
    run_every: int  # an agreement run after this many crowd rankings
    raters: tuple[str, ...] | None = None  # crowd usernames working here; None: all of them


@dataclass(frozen=True)
class DemoProject:
    name: str
    description: str
    guidelines: str
    settings: dict[str, Any]  # Project fields, as project_create takes them
    crowd: CrowdPlan
    prompts: tuple[DemoPrompt, ...]


class ScenarioError(ValueError):
    """The demo data file is malformed (a packaging or editing mistake, not user input)."""


def load_scenario(file_name: str) -> DemoProject:
    """Read one project from the package's data folder (works from a wheel too)."""
    raw = resources.files("demo").joinpath("data", file_name).read_text(encoding="utf-8")
    try:
        return parse_scenario(json.loads(raw))
    except (KeyError, TypeError, ValueError) as error:
        raise ScenarioError(f"demo/data/{file_name}: {error}") from error


def parse_scenario(data: dict[str, Any]) -> DemoProject:
    prompts = tuple(_prompt(item) for item in data["prompts"])
    ids = [prompt.external_id for prompt in prompts]
    if len(set(ids)) != len(ids):
        raise ValueError("prompt ids must be unique")
    return DemoProject(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        guidelines=str(data.get("guidelines", "")),
        settings=dict(data.get("settings", {})),
        crowd=_crowd_plan(data["crowd"]),
        prompts=prompts,
    )


def _crowd_plan(item: dict[str, Any]) -> CrowdPlan:
    raters = item.get("raters")
    return CrowdPlan(
        open_for_humans=int(item["open_for_humans"]),
        run_every=int(item["run_every"]),
        raters=None if raters is None else tuple(str(name) for name in raters),
    )


def _prompt(item: dict[str, Any]) -> DemoPrompt:
    if "prompt" in item:
        messages: tuple[tuple[str, str], ...] = (("user", str(item["prompt"])),)
    else:
        messages = tuple((str(m["role"]), str(m["content"])) for m in item["messages"])
    return DemoPrompt(
        external_id=str(item["id"]),
        messages=messages,
        responses=tuple(_response(response) for response in item["responses"]),
        gold=bool(item.get("gold", False)),
    )


def _response(item: dict[str, Any]) -> DemoResponse:
    quality = float(item["quality"])
    if not 0 <= quality <= 1:
        raise ValueError(f"quality {quality} is outside 0..1")
    flaws = frozenset(item.get("flaws", ()))
    if not flaws <= FLAWS:
        raise ValueError(f"unknown flaws {sorted(flaws - FLAWS)}")
    return DemoResponse(
        text=str(item["text"]),
        model=str(item["model"]),
        quality=quality,
        note=str(item["note"]),
        flaws=flaws,
    )
