"""The arena in Chromium: two turns streamed side by side, a vote on each by key, reveal."""

from __future__ import annotations

import pytest

from authoring.arena.models import Battle, Turn
from authoring.arena.options import clean_arena_options
from labeling import services as labeling_services
from labeling.models import Membership, TaskKind
from rankings.models import Ranking
from tests.e2e.screenshots import SCREENSHOTS
from tests.llm.helpers import make_endpoint

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]

BOTH_REPLIED = (
    "() => document.querySelectorAll('[data-turn] [data-vote]:not([hidden])').length === 1"
)


def _both_replied(page, turns: int) -> None:
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-turn]').length === {turns}"
        " && document.querySelectorAll('[data-turn] [data-vote]:not([hidden])').length === 1"
    )


def test_an_arena_of_two_turns_with_a_vote_each(open_as, lead, make_user, fake_llm, settings):
    settings.LLM_SEMAPHORE_URL = ""
    fake_llm.state.stream_delay = 0.02
    project = labeling_services.project_create(
        creator=lead,
        name="Assistant arena",
        task_kind=TaskKind.ARENA,
        task_options=clean_arena_options({}),
    )
    for name, temperature in (("north", 0.2), ("south", 0.9)):
        make_endpoint(
            project, fake_llm.base_url, name=name, model="assistant", temperature=temperature
        )
    rater = make_user("voter")
    Membership.objects.create(project=project, user=rater)

    page = open_as(rater, f"/rate/{project.pk}/")
    box = page.locator("#arena-message")
    box.fill("How do **tides** work?")
    box.press("Enter")
    _both_replied(page, 1)
    first_a = page.locator('[data-turn="1"] [data-side="a"] [data-reply]').inner_text()
    assert first_a.startswith("[assistant] answer to: How do tides work?")
    # The stored reply replaced the streamed text with its sanitized HTML.
    assert (
        page.locator('[data-turn="1"] [data-side="a"] [data-reply] strong').inner_text() == "tides"
    )
    page.keyboard.press("3")  # much better
    page.keyboard.press("b")
    page.wait_for_function(
        "() => document.querySelector('[data-turn=\"1\"] [data-verdict]:not([hidden])')"
    )
    assert "B is better" in page.locator('[data-turn="1"] [data-verdict]').inner_text()
    ranking = Ranking.objects.get()
    first = Turn.objects.get(number=1)
    assert (
        ranking.groups == [[first.response_b_id], [first.response_a_id]] and ranking.strength == 3
    )

    page.wait_for_function("() => !document.querySelector('#arena-message').disabled")
    box.fill("And why are there two a day?")
    box.press("Enter")
    _both_replied(page, 2)
    assert page.locator('[data-turn="1"] [data-side="b"]').get_attribute("class").count("preferred")
    page.screenshot(path=str(SCREENSHOTS / "arena.png"), full_page=True)
    page.keyboard.press("a")
    page.wait_for_function(
        "() => document.querySelector('[data-turn=\"2\"] [data-verdict]:not([hidden])')"
    )
    assert Ranking.objects.count() == 2
    second = Turn.objects.get(number=2)
    assert second.prompt.messages[1] == {"role": "assistant", "content": first.response_b.text}
    assert second.choice == "a" and second.counted

    assert "north" not in page.content() and "south" not in page.content()
    page.keyboard.press("Escape")  # out of the message box, which took the focus
    page.keyboard.press("r")
    page.wait_for_function("() => !document.querySelector('[data-revealed]').hidden")
    battle = Battle.objects.get()
    revealed = page.locator("[data-revealed]").inner_text()
    assert (
        f"Model A was {battle.model_a}" in revealed and f"model B was {battle.model_b}" in revealed
    )
    assert page.locator("#arena-message").is_disabled()
