"""The rater's page in Chromium: keys, drag, pairwise strength, rubric, skip, lease, undo."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import Assignment, AssignmentStatus, Membership, Role
from labeling.rubric import HHH_PRESET
from rankings.models import Ranking
from tests.e2e.screenshots import SCREENSHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]

EMPTY_QUEUE = "Nothing left to rank in this project — thank you!"
TASK = "#task-slot > .is-current"
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}

PROMPTS = [
    {
        "external_id": "tuple-vs-list",
        "messages": [
            {"role": "system", "content": "You are a patient Python tutor."},
            {"role": "user", "content": "What is the difference between a list and a tuple?"},
            {"role": "assistant", "content": "Do you mean in Python?"},
            {"role": "user", "content": "Yes, and when should I use **which**?"},
        ],
        "responses": [
            {
                "text": "A list is mutable and a tuple is immutable:\n\n"
                "```python\nitems = [1, 2]\nitems.append(3)  # fine\n"
                "point = (1, 2)\npoint.append(3)  # AttributeError\n```\n\n"
                "Use a tuple for fixed records and a list for collections that grow.",
                "model": "model-alpha",
            },
            {
                "text": "- **list**: mutable, `[1, 2]`\n- **tuple**: immutable, hashable, `(1, 2)`"
                "\n\nTuples can be dictionary keys; lists cannot.",
                "model": "model-beta",
            },
            {"text": "They are the same thing with different brackets.", "model": "model-gamma"},
        ],
    },
    {
        "external_id": "haiku",
        "messages": [
            {"role": "system", "content": "You are a concise poet."},
            {"role": "user", "content": "Write a haiku about autumn rain."},
        ],
        "responses": [
            {"text": "Cold rain on the roof\nmaple leaves float down the drain\nthe kettle hums"},
            {"text": "Autumn rain falls down. It is wet. The end."},
            {"text": "*Grey sky, soft drumming —*\n*red leaves on the glass,*\n*the year sighs.*"},
        ],
    },
    {
        "external_id": "boil",
        "prompt": "How long do I boil an egg?",
        "responses": [
            {"text": "About 7 minutes for a jammy yolk, 10 for hard-boiled."},
            {"text": "Until it is done."},
            {"text": "Put it in cold water, bring to a boil, then 9 minutes."},
        ],
    },
]

PAIRWISE = [
    {
        "prompt": f"Explain {topic} to a ten-year-old.",
        "responses": [
            {"text": f"{topic.capitalize()} is like a story about how things work."},
            {"text": f"Imagine {topic} as a game with simple rules you can try at home."},
        ],
    }
    for topic in ("gravity", "rainbows", "magnets")
]


@pytest.fixture
def make_project():
    User = get_user_model()
    lead = User.objects.create_user(username="lead", password="unused-password")
    rater = User.objects.create_user(username="rita", password="unused-password")

    def make(records=PROMPTS, **fields):
        fields.setdefault("overlap", 1)
        project = labeling_services.project_create(creator=lead, name="Helpfulness pilot", **fields)
        Membership.objects.create(project=project, user=rater, role=Role.RATER)
        labeling_services.prompts_import(project=project, raw=json.dumps(records))
        return project, rater

    return make


def rate_path(project) -> str:
    return f"/rate/{project.pk}/"


def shown_assignment(page) -> Assignment:
    return Assignment.objects.get(pk=int(page.get_attribute(TASK, "data-assignment-id")))


def badge(page, label: str) -> str:
    return page.inner_text(f"{TASK} [data-label={label}] [data-rank-badge]")


def focused_label(page) -> str | None:
    return page.evaluate("document.activeElement.closest('[data-card]')?.dataset.label ?? null")


def wait_for_next_task(page, previous: Assignment) -> Assignment:
    # A task other than `previous` (not the "loading" placeholder shown when the next task
    # had not arrived yet because the previous answer was still on its way).
    page.wait_for_function(
        f"() => (document.querySelector('{TASK}')?.dataset.assignmentId ?? '{previous.pk}')"
        f" !== '{previous.pk}'"
    )
    return shown_assignment(page)


def wait_until_sent(page) -> None:
    page.wait_for_function("() => window.__ranklab.pending === 0")


def test_keyboard_only_ranking_with_a_tie(open_as, make_project):
    project, rater = make_project()
    page = open_as(rater, rate_path(project))
    first = shown_assignment(page)
    assert "model-alpha" not in page.content()
    assert focused_label(page) == "A"

    page.keyboard.press("?")
    assert page.locator("#keys-dialog").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#keys-dialog").is_visible()
    assert focused_label(page) == "A"

    # A is second, B best; C ties with the one ranked just above it (A).
    page.keyboard.press("2")
    # Focus moves on in the key handler; under load the check can run before it does.
    page.wait_for_function(
        "() => document.activeElement.closest('[data-card]')?.dataset.label === 'B'"
    )
    assert focused_label(page) == "B"
    page.keyboard.press("1")
    page.keyboard.press("t")
    assert (badge(page, "A"), badge(page, "B"), badge(page, "C")) == (
        "rank 2 (tie)",
        "rank 1",
        "rank 2 (tie)",
    )
    # Arrows move between responses; Backspace takes a rank away, a number sets it again.
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert focused_label(page) == "A"
    page.keyboard.press("Backspace")
    assert badge(page, "A") == ""
    page.keyboard.press("2")  # C moves down one to make room
    assert (badge(page, "A"), badge(page, "C")) == ("rank 2", "rank 3")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("t")
    assert page.inner_text(f"{TASK} [data-summary]") == "B > A = C"

    page.evaluate("window.__marker = 1")
    page.keyboard.press("Enter")
    second = wait_for_next_task(page, first)
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of swapping"
    assert focused_label(page) == "A"
    page.wait_for_selector("[data-undo-bar]:not([hidden])")
    assert page.inner_text("[data-done-today]") == "1"
    a, b, c = first.shown_order
    ranking = Ranking.objects.get(assignment=first)
    assert ranking.groups == [[b], [a, c]]
    assert ranking.seconds is not None
    assert second.prompt_id != first.prompt_id
    timing = page.evaluate("window.__ranklab.timings[0]")
    assert timing["preloaded"] is True


def test_drag_and_drop_ranking(open_as, make_project):
    project, rater = make_project()
    page = open_as(rater, rate_path(project))
    first = shown_assignment(page)
    for label, slot in (("C", 1), ("A", 2), ("B", 3)):
        page.drag_and_drop(f"{TASK} .chip[data-chip={label}]", f"{TASK} [data-slot='{slot}']")
    assert page.inner_text(f"{TASK} [data-summary]") == "C > A > B"
    # Dragging a response by its handle to the top moves the others down.
    page.drag_and_drop(f"{TASK} [data-label=B] [data-drag-handle]", f"{TASK} [data-slot='1']")
    assert page.inner_text(f"{TASK} [data-summary]") == "B > C > A"
    assert page.locator(f"{TASK} [data-slot='1'] .chip").all_inner_texts() == ["B"]

    page.click(f"{TASK} [data-submit]")
    wait_for_next_task(page, first)
    wait_until_sent(page)
    a, b, c = first.shown_order
    assert Ranking.objects.get(assignment=first).groups == [[b], [c], [a]]


def test_pairwise_with_strength(open_as, make_project):
    project, rater = make_project(PAIRWISE)
    page = open_as(rater, rate_path(project))
    first = shown_assignment(page)
    assert page.locator(f"{TASK} .chip").count() == 0

    page.keyboard.press("b")
    page.keyboard.press("Enter")
    assert "Say how much better B is: much better, better or slightly better." in (
        page.inner_text(f"{TASK} [data-problems]")
    )
    assert not Ranking.objects.exists()
    page.keyboard.press("2")
    assert page.inner_text(f"{TASK} [data-summary]") == "B is better than A."
    page.keyboard.press("Enter")
    second = wait_for_next_task(page, first)

    # By mouse: "Tie" picks "About the same" too.
    page.click(f"{TASK} label.choice:has-text('Tie')")
    assert page.is_checked(f"{TASK} input[name=strength][value='0']")
    page.click(f"{TASK} [data-submit]")
    wait_for_next_task(page, second)
    wait_until_sent(page)

    a, b = first.shown_order
    ranking = Ranking.objects.get(assignment=first)
    assert (ranking.groups, ranking.strength) == ([[b], [a]], 2)
    tie = Ranking.objects.get(assignment=second)
    assert (tie.groups, tie.strength) == ([second.shown_order], 0)


def test_required_rubric_refuses_submit_until_filled(open_as, make_project):
    rubric = [dict(item) for item in HHH_PRESET[:1]] + [
        {"key": "unsafe", "label": "Unsafe", "kind": "checkbox"}
    ]
    rubric[0]["required"] = True
    project, rater = make_project(rubric=rubric, require_rationale=True)
    page = open_as(rater, rate_path(project))
    first = shown_assignment(page)
    for key in ("1", "2", "3", "Enter"):
        page.keyboard.press(key)
    problems = page.inner_text(f"{TASK} [data-problems]")
    assert "Helpful is required: rate A, B and C." in problems
    assert "Write a short rationale: this project asks for one." in problems
    assert page.locator(f"{TASK} [data-rating].is-missing").count() == 3
    assert not Ranking.objects.exists()

    page.click(f"{TASK} [data-label=A] [data-rating] label.pill:has-text('6')")
    page.click(f"{TASK} [data-label=B] [data-rating] label.pill:has-text('3')")
    page.click(f"{TASK} [data-label=B] label.check")
    page.keyboard.press("Enter")
    assert page.inner_text(f"{TASK} [data-problems]").startswith("Helpful is required: rate C.")
    # A number key on a focused scale rates it.
    page.focus(f"{TASK} [data-label=C] [data-rating] input")
    page.keyboard.press("5")
    page.fill(f"{TASK} textarea[name=rationale]", "A explains mutability with an example.")
    page.keyboard.press("Control+Enter")
    wait_for_next_task(page, first)
    wait_until_sent(page)

    a, b, c = first.shown_order
    ranking = Ranking.objects.get(assignment=first)
    assert ranking.ratings == {
        str(a): {"helpful": 6, "unsafe": False},
        str(b): {"helpful": 3, "unsafe": True},
        str(c): {"helpful": 5, "unsafe": False},
    }
    assert ranking.rationale == "A explains mutability with an example."


def test_skip_with_a_reason(open_as, make_project):
    project, rater = make_project()
    page = open_as(rater, rate_path(project))
    first = shown_assignment(page)
    page.keyboard.press("s")
    assert page.locator(f"{TASK} [data-skip-details]").get_attribute("open") is not None
    page.keyboard.press("Enter")
    assert "Say why you skip this task" in page.inner_text(f"{TASK} [data-skip-problems]")
    page.keyboard.press("ArrowDown")  # moves to, and picks, the second reason
    page.keyboard.press("Enter")
    wait_for_next_task(page, first)
    wait_until_sent(page)
    first.refresh_from_db()
    assert first.status == AssignmentStatus.SKIPPED
    assert first.skip_reason == "The prompt or the responses are broken"
    assert page.locator("[data-undo-bar]").is_hidden()


def test_lease_expiry_warns_and_activity_renews(open_as, make_project):
    project, rater = make_project()
    current = labeling_services.lease_next_assignment(project=project, rater=rater)
    assert current is not None
    Assignment.objects.filter(pk=current.pk).update(
        expires_at=timezone.now() + timedelta(seconds=60)
    )
    page = open_as(rater, rate_path(project), fake_clock=True)
    assert shown_assignment(page).pk == current.pk
    # A minute left is within the warning time: the page says so at once.
    page.wait_for_selector("[data-lease-warning]:has-text('Still there?')")
    assert "is-warning" in page.get_attribute("[data-lease-clock]", "class")
    page.clock.fast_forward(61_000)
    page.wait_for_selector("[data-lease-warning]:has-text('Time is up on this task')")
    assert page.inner_text("[data-lease-left]") == "0:00"

    page.keyboard.press("ArrowRight")  # any activity renews the lease
    page.wait_for_selector("[data-lease-warning]", state="hidden")
    current.refresh_from_db()
    assert current.expires_at > timezone.now() + timedelta(seconds=project.lease_seconds - 30)


def test_a_lease_taken_over_says_the_answer_was_not_saved(open_as, make_project):
    project, rater = make_project()
    page = open_as(rater, rate_path(project))
    mine = shown_assignment(page)
    past = timezone.now() - timedelta(minutes=20)
    Assignment.objects.filter(pk=mine.pk).update(
        leased_at=past, expires_at=past + timedelta(minutes=10)
    )
    other = get_user_model().objects.create_user(username="quick", password="unused-password")
    Membership.objects.create(project=project, user=other, role=Role.RATER)
    taken = labeling_services.lease_next_assignment(project=project, rater=other)
    assert taken is not None and taken.pk != mine.pk

    for key in ("1", "2", "3", "Enter"):
        page.keyboard.press(key)
    wait_for_next_task(page, mine)
    page.wait_for_selector("[data-page-error]:has-text('was given to another rater')")
    assert "Your answer to the previous task was not saved" in page.inner_text("[data-page-error]")
    assert not Ranking.objects.exists()


def test_an_answer_the_server_refuses_comes_back_with_the_reason(open_as, make_project):
    project, rater = make_project()
    page = open_as(rater, rate_path(project))
    first = shown_assignment(page)
    # The lead asks for a rationale after the page loaded: the page's own check passes, the
    # server refuses (400 {detail, code}), and the task comes back with the reason.
    project.require_rationale = True
    project.save(update_fields=["require_rationale"])
    for key in ("1", "2", "3", "Enter"):
        page.keyboard.press(key)
    page.wait_for_selector(f"{TASK} [data-problems]:has-text('Write a short rationale')")
    assert shown_assignment(page).pk == first.pk
    assert not Ranking.objects.exists()


def test_empty_queue_and_the_last_task(open_as, make_project):
    project, rater = make_project(PROMPTS[:1])
    page = open_as(rater, rate_path(project))
    first = shown_assignment(page)
    for key in ("1", "2", "3", "Enter"):
        page.keyboard.press(key)
    page.wait_for_selector(f"text={EMPTY_QUEUE}")
    assert page.locator(".rank-form").count() == 0
    wait_until_sent(page)
    assert Ranking.objects.filter(assignment=first).exists()
    assert page.locator("[data-lease-clock]").is_hidden()

    page.reload()
    assert page.locator(f"text={EMPTY_QUEUE}").is_visible()
    assert page.locator(".rank-form").count() == 0


def test_undo_brings_the_task_back_and_resubmit_replaces_the_ranking(open_as, make_project):
    project, rater = make_project()
    page = open_as(rater, rate_path(project))
    first = shown_assignment(page)
    for key in ("1", "2", "3", "Enter"):
        page.keyboard.press(key)
    second = wait_for_next_task(page, first)
    page.wait_for_selector("[data-undo-bar]:not([hidden])")
    page.keyboard.press("u")
    page.wait_for_function(
        f"() => document.querySelector('{TASK}')?.dataset.assignmentId === '{first.pk}'"
    )
    assert page.inner_text(f"{TASK} [data-summary]") == "A > B > C"
    assert page.locator(f"{TASK}[data-reopened]").count() == 1
    assert page.inner_text("[data-done-today]") == "0"

    page.keyboard.press("3")  # A becomes last
    assert page.inner_text(f"{TASK} [data-summary]") == "B > C > A"
    page.keyboard.press("Enter")
    assert wait_for_next_task(page, first).pk == second.pk
    wait_until_sent(page)
    a, b, c = first.shown_order
    ranking = Ranking.objects.get(assignment=first)
    assert ranking.groups == [[b], [c], [a]]
    assert ranking.revisions[0]["groups"] == [[a], [b], [c]]


def test_a_submit_lost_on_the_network_is_retried_and_stored_once(open_as, make_project):
    project, rater = make_project()
    page = open_as(rater, rate_path(project))
    first = shown_assignment(page)
    calls = []

    def lose_first_answer(route):
        calls.append(route.request.post_data)
        if len(calls) == 1:
            route.fetch()  # the server stores the ranking, but the answer never arrives
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/submit/", lose_first_answer)
    for key in ("2", "1", "3", "Enter"):
        page.keyboard.press(key)
    wait_for_next_task(page, first)  # the next task does not wait for the network
    wait_until_sent(page)
    page.wait_for_selector("[data-undo-bar]:not([hidden])")
    assert len(calls) == 2
    assert Ranking.objects.filter(assignment=first).count() == 1
    a, b, c = first.shown_order
    assert Ranking.objects.get(assignment=first).groups == [[b], [a], [c]]
    assert page.inner_text("[data-done-today]") == "1"


def test_script_and_img_onerror_in_model_output_stay_inert(open_as, make_project):
    payload = (
        "<script>window.__xss = 1; alert('script')</script>"
        "<img src=x onerror=\"window.__xss = 1; alert('img')\"> **still markdown**"
    )
    records = [
        {"prompt": f"{payload} prompt {index}", "responses": [payload, f"plain {index}", payload]}
        for index in range(2)
    ]
    project, rater = make_project(records)
    page = open_as(rater, rate_path(project))
    dialogs: list[str] = []

    def dismiss(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    first = shown_assignment(page)

    def assert_inert() -> None:
        page.wait_for_timeout(200)
        assert dialogs == []
        assert page.evaluate("window.__xss") is None
        assert page.locator("#task-slot img, #task-slot script").count() == 0
        assert page.locator("#task-slot > .is-next").count() == 1  # the preloaded task
        assert "<script>window.__xss" in page.inner_text(f"{TASK} .conversation")
        assert page.locator(f"{TASK} .response-body strong:has-text('still markdown')").count()

    assert_inert()
    for key in ("1", "2", "3", "Enter"):
        page.keyboard.press(key)
    wait_for_next_task(page, first)  # the preloaded task, parsed from its <template>
    assert_inert()


def test_screenshots_wide_and_narrow(open_as, make_project):
    rubric = [dict(item) for item in HHH_PRESET] + [
        {"key": "unsafe", "label": "Unsafe", "kind": "checkbox"}
    ]
    rubric[0]["required"] = True
    project, rater = make_project(rubric=rubric, guidelines="Prefer **correct** answers.")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page = open_as(rater, rate_path(project), WIDE)
    assert page.locator("text=Before your first task: the guidelines").is_visible()
    page.click("text=I've read them — start ranking")
    page.wait_for_selector(TASK)
    boxes = [card.bounding_box() for card in page.locator(f"{TASK} .response").all()]
    assert len({round(box["y"]) for box in boxes}) == 1, "side by side on a wide screen"
    page.keyboard.press("2")
    page.keyboard.press("1")
    page.click(f"{TASK} [data-label=A] [data-rating] label.pill:has-text('5')")
    page.click(f"{TASK} [data-label=B] [data-rating] label.pill:has-text('7')")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "rater-wide.png"))

    narrow = open_as(rater, rate_path(project), NARROW)
    boxes = [card.bounding_box() for card in narrow.locator(f"{TASK} .response").all()]
    assert len({round(box["x"]) for box in boxes}) == 1, "stacked on a narrow screen"
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]
    narrow.screenshot(path=str(SCREENSHOTS / "rater-narrow.png"))

    pairwise, _ = make_pairwise_project(rater)
    page = open_as(rater, rate_path(pairwise), WIDE)
    page.keyboard.press("a")
    page.keyboard.press("3")
    page.screenshot(path=str(SCREENSHOTS / "rater-pairwise.png"))


def make_pairwise_project(rater):
    lead = get_user_model().objects.get(username="lead")
    project = labeling_services.project_create(creator=lead, name="Pairwise pilot", overlap=1)
    Membership.objects.create(project=project, user=rater, role=Role.RATER)
    labeling_services.prompts_import(project=project, raw=json.dumps(PAIRWISE))
    return project, rater
