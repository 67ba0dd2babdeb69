"""A lead logs in, reads the quality dashboard, dismisses a flag and pauses a rater with htmx."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import Membership, MemberStatus, Prompt, Role
from rankings.models import Flag, FlagStatus
from rankings.quality import findings
from tests.e2e.screenshots import SCREENSHOTS
from tests.rankings.quality_helpers import done_run, make_ranking, prompt_row, score

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]

PASSWORD = "a-known-password-for-e2e"

TOPICS = [
    ("tuple-vs-list", "What is the difference between a list and a tuple in Python?"),
    ("haiku-rain", "Write a haiku about autumn rain."),
    ("sql-injection", "How do I stop SQL injection in a Flask app?"),
    ("bayes", "Explain Bayes' theorem to a twelve-year-old."),
    ("git-rebase", "When should I rebase instead of merge?"),
    ("sourdough", "Why did my sourdough not rise?"),
]
ANSWERS = [
    "A clear, correct answer with an example and a short caveat.",
    "A correct but terse answer that skips the why.",
    "A rambling answer that gets there eventually, with one small mistake.",
    "A confident answer that is wrong about the key point.",
]
# name: (agreement, low, high, pairs, extra score columns)
CROWD = {
    "alice": (0.84, 0.80, 0.87, 420, {}),
    "bruno": (0.81, 0.77, 0.85, 390, {"gold_accuracy": 0.83, "gold_pairs": 30, "gold_rankings": 3}),
    "chen": (0.78, 0.73, 0.82, 300, {"speed_ratio": 1.4, "median_seconds": 58.0}),
    "dara": (
        0.80,
        0.76,
        0.84,
        350,
        {"self_consistency": 0.81, "repeat_pairs": 24, "repeat_rankings": 4},
    ),
    "erin": (0.49, 0.43, 0.55, 280, {"gold_accuracy": 0.47, "gold_pairs": 30, "gold_rankings": 3}),
    "frank": (
        0.56,
        0.50,
        0.62,
        260,
        {
            "speed_ratio": 0.06,
            "median_seconds": 2.4,
            "straight_lining_rate": 0.93,
            "first_shown_win_rate": 0.96,
            "position_p_value": 1e-12,
        },
    ),
}


@pytest.fixture
def dashboard():
    """A project with history, a scored crowd, flags, hard prompts and one extra-rater prompt."""
    User = get_user_model()
    lead = User.objects.create_user(username="lena", password=PASSWORD)
    project = labeling_services.project_create(
        creator=lead,
        name="Helpfulness pilot",
        overlap=2,
        max_overlap=4,
        adaptive_agreement_threshold=0.5,
    )
    records = [
        {
            "external_id": external_id,
            "prompt": question,
            "responses": [
                {"text": answer, "model": model}
                for answer, model in zip(ANSWERS, ("m-70b", "m-8b", "m-mix", "m-1b"), strict=True)
            ],
        }
        for external_id, question in TOPICS
    ]
    labeling_services.prompts_import(project=project, raw=json.dumps(records))
    raters = {}
    for name in CROWD:
        raters[name] = User.objects.create_user(username=name, password=PASSWORD)
        Membership.objects.create(project=project, user=raters[name], role=Role.RATER)
    prompts = list(Prompt.objects.filter(project=project).order_by("id"))
    orders = {
        "alice": [[0], [1], [2], [3]],
        "bruno": [[0], [1, 2], [3]],
        "chen": [[1], [0], [2], [3]],
        "erin": [[3], [2], [0], [1]],
        "frank": [[2], [0], [3], [1]],
    }
    for index, prompt in enumerate(prompts):
        ids = list(prompt.responses.order_by("position").values_list("id", flat=True))
        pair = list(orders)[index % 5], list(orders)[(index + 2) % 5]
        for name in pair:
            groups = [[ids[slot] for slot in group] for group in orders[name]]
            make_ranking(project, prompt, raters[name], groups=groups, seconds=30.0)
    # Three gold prompts, ranked by erin (wrongly) and bruno, so the gold rule has evidence.
    gold_records = [
        {**record, "external_id": f"gold-{record['external_id']}"} for record in records[:3]
    ]
    labeling_services.prompts_import(project=project, raw=json.dumps(gold_records))
    for gold in Prompt.objects.filter(project=project, external_id__startswith="gold-"):
        ids = list(gold.responses.order_by("position").values_list("id", flat=True))
        gold.is_gold, gold.gold_ranking = True, [[response_id] for response_id in ids]
        gold.save(update_fields=["is_gold", "gold_ranking"])
        make_ranking(project, gold, raters["erin"], groups=[[i] for i in reversed(ids)])
        make_ranking(project, gold, raters["bruno"])
    now = timezone.now()
    history = [(0.58, 0.31), (0.63, 0.38), (0.61, 0.35), (0.66, 0.44), (0.69, 0.47)]
    for days_ago, (agreement, alpha) in zip(range(8, 0, -2), history[:-1], strict=False):
        done_run(
            project,
            finished_at=now - timedelta(days=days_ago),
            metrics={"pairwise_agreement": agreement, "alpha_ordinal": alpha},
        )
    agreement, alpha = history[-1]
    run = done_run(
        project,
        metrics={
            "pairwise_agreement": agreement,
            "pairwise_agreement_n_units": 412,
            "pairwise_agreement_n_pairs": 1236,
            "pairwise_agreement_low": 0.65,
            "pairwise_agreement_high": 0.73,
            "alpha_ordinal": alpha,
            "alpha_ordinal_n_units": 240,
            "kappa": 0.41,
            "kappa_n_units": 412,
            "kendall_w": 0.58,
            "kendall_w_n_units": 60,
            "n_raters": 6,
        },
        n_rankings=12,
        n_prompts=6,
    )
    for name, (value, low, high, pairs, extra) in CROWD.items():
        score(
            run,
            raters[name],
            agreement=value,
            agreement_low=low,
            agreement_high=high,
            compared_pairs=pairs,
            **extra,
        )
    for prompt, value in zip(prompts, (0.17, 0.33, 0.5, 0.67, 0.83, 1.0), strict=True):
        prompt_row(run, prompt, agreement=value, n_rankings=2)
    findings.apply_run_findings(run=run)
    return project, lead


def log_in(page, live_server, username: str, next_path: str) -> None:
    page.goto(f"{live_server.url}/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def flag_card(page, rater: str, code: str):
    return page.locator(f'.flag-card[data-rater="{rater}"][data-code="{code}"]')


def test_lead_reviews_flags_dismisses_one_and_pauses_a_rater(page, live_server, dashboard):
    project, lead = dashboard
    path = f"/rate/{project.pk}/quality/"
    log_in(page, live_server, lead.username, path)

    # What the lead sees: metrics with counts, the trend, the flag queue, raters, hard prompts.
    assert page.locator("h1").inner_text() == "Agreement and rater quality"
    assert page.locator("[data-trend-chart] polyline").count() == 2
    assert page.locator("[data-scatter] [data-flagged]").count() == 2
    cards = page.locator(".flag-card").evaluate_all(
        "cards => cards.map(card => card.dataset.rater + ' ' + card.dataset.code)"
    )
    assert sorted(cards) == [
        "erin GOLD_FAILURES",
        "erin LOW_AGREEMENT",
        "frank LOW_AGREEMENT",
        "frank POSITION_BIAS",
        "frank STRAIGHT_LINING",
        "frank TOO_FAST",
    ]
    assert "extra rater" in page.locator("#prompts").inner_text()
    assert page.locator("[data-extra-raters] tbody tr").count() == 2
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "lead-quality.png"), full_page=True)

    # Dismiss erin's gold flag with a note; the queue swaps in place, no reload.
    page.evaluate("window.__marker = 1")
    card = flag_card(page, "erin", "GOLD_FAILURES")
    card.locator("input[name=note]").fill("gold item 3 was ambiguous; fixed")
    card.locator("button[data-action=dismiss]").click()
    page.wait_for_selector(
        '.flag-card[data-rater="erin"][data-code="GOLD_FAILURES"]', state="detached"
    )
    assert page.locator("#flags-title").inner_text().endswith("5 open")
    dismissed = Flag.objects.get(rater__username="erin", code="GOLD_FAILURES")
    assert dismissed.status == FlagStatus.DISMISSED
    assert dismissed.note == "gold item 3 was ambiguous; fixed"
    erin_flags = page.locator('tr[data-rater="erin"] [data-column=flags]')
    page.wait_for_function(  # a function, not an expression: the page's CSP forbids eval
        "() => !document.querySelector('tr[data-rater=\"erin\"] [data-column=flags]')"
        ".textContent.includes('GOLD_FAILURES')"
    )
    assert "LOW_AGREEMENT" in erin_flags.inner_text()

    # Pause frank from his too-fast flag, after confirming: all his flags close, his row
    # says paused.
    asked: list[str] = []

    def accept(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    flag_card(page, "frank", "TOO_FAST").locator("button[data-action=pause]").click()
    page.wait_for_selector('.flag-card[data-rater="frank"]', state="detached")
    page.wait_for_selector('tr[data-rater="frank"][data-status="paused"]')
    assert page.locator(".flag-card").count() == 1  # erin's low agreement is left
    assert "paused" in page.locator('tr[data-rater="frank"] th').inner_text()
    frank = Membership.objects.get(project=project, user__username="frank")
    assert frank.status == MemberStatus.PAUSED
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of swapping"
    assert asked and asked[0].startswith("Pause frank?")

    # Sort the table by speed, fastest first, on the server; the URL follows.
    page.click("th[data-sort=speed] a")
    page.wait_for_selector("th[data-sort=speed][aria-sort=ascending]")
    first = page.locator("#raters tbody tr").first.get_attribute("data-rater")
    assert first == "frank"
    assert page.url.endswith("?sort=speed")
    page.click("th[data-sort=speed] a")
    page.wait_for_selector("th[data-sort=speed][aria-sort=descending]")
    assert page.locator("#raters tbody tr").first.get_attribute("data-rater") == "chen"
