"""Extension point of the prompt page: panels other apps add to it without this app
importing them (the app chain forbids `rankings` → higher apps).

An app registers a provider in its `AppConfig.ready()`; for each prompt the provider gets
the prompt and its response labels (`{response id: "A"}`) and returns JSON-serialisable
data, or None when it has nothing to show (then the page and its API are as without it).
The data is shown on the page through the provider's template fragment (as `extra`) and
returned by `GET /api/prompts/{id}/` under `extras[key]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labeling.models import Prompt

PromptExtraBuilder = Callable[..., dict[str, Any] | None]
"""Called as `build(prompt=prompt, labels=labels)`."""


@dataclass(frozen=True)
class PromptExtra:
    key: str
    template: str
    build: PromptExtraBuilder


@dataclass(frozen=True)
class PromptExtraView:
    key: str
    template: str
    data: dict[str, Any]


_EXTRAS: dict[str, PromptExtra] = {}


def register_prompt_extra(*, key: str, template: str, build: PromptExtraBuilder) -> None:
    """Add (or replace, so a reloaded app registers once) the panel `key`."""
    _EXTRAS[key] = PromptExtra(key=key, template=template, build=build)


def unregister_prompt_extra(*, key: str) -> None:
    _EXTRAS.pop(key, None)


def prompt_extras(*, prompt: Prompt, labels: dict[int, str]) -> list[PromptExtraView]:
    """The panels with something to show for `prompt`, in registration order."""
    views = []
    for extra in list(_EXTRAS.values()):
        data = extra.build(prompt=prompt, labels=labels)
        if data is not None:
            views.append(PromptExtraView(key=extra.key, template=extra.template, data=data))
    return views
