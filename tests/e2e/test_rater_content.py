"""The rater page in Chromium with content no one tuned for: Arabic, math, wide tables,
128 lines of Python, emoji, 9 responses, a 5,000-word answer, hostile HTML, a phone screen.

Each check measures what the rater sees (directions, boxes, fonts, page height against the
visible task), not what the HTML claims.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from labeling import services as labeling_services
from labeling.models import Assignment, Membership, Role
from rankings.models import Ranking
from tests.e2e.screenshots import SCREENSHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]

TASK = "#task-slot > .is-current"
NEXT = "#task-slot > .is-next"
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
VIEWPORTS = [pytest.param(WIDE, id="wide"), pytest.param(NARROW, id="phone")]

ARABIC = (
    "مرحبا! هذه إجابة باللغة العربية عن سؤالك.\n\n"
    "هل هي واضحة؟\n\n"
    "1. النقطة الأولى.\n2. النقطة الثانية.\n\n"
    "An English paragraph after the Arabic one."
)
MATH = (
    "The sum is\n\n\\[\n\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}\n\\]\n\n"
    "and inline $a_{1}^{2} + b_{i}^{*} + c_{j}$ with a thin space $x \\, y$, "
    "or \\(\\sqrt{2}\\).\n\nBroken: $\\frac{1}{$ stays as written."
)
TABLE = (
    "| Subscription | Monthly | Quarterly | Semiannually | Yearly | Lifetime |\n"
    "|---|---:|---:|---:|---:|---|\n"
    + "".join(f"| Plan{index} | 10 | 27 | 52 | 100 | Negotiable |\n" for index in range(4))
)
CODE = (
    "Here is the module:\n\n```python\n"
    + "\n".join(
        f"def step_{index}(value: int) -> int:\n    return value * {index}  # step {index}"
        for index in range(64)
    )
    + "\n```"
)
EMOJI = "Well done 🎉 — 👍🏽\n\n😀🚀🎉"
LONG = "\n\n".join(
    " ".join(f"word{index * 100 + offset}" for offset in range(100)) for index in range(50)
)
HOSTILE = (
    "<script>window.__xss = 1; alert('script')</script>"
    "<img src=x onerror=\"window.__xss = 1; alert('img')\"> **still markdown** "
    "$\\href{javascript:window.__xss=1}{x}$ "
    "[link](javascript:window.__xss=1) \\(<img src=x onerror=alert(1)>\\)\n\n"
    "```html\n<script>window.__xss = 1</script>\n```\n\n"
    "| <img src=x onerror=alert(1)> | $y$ |\n|---|---|\n| a | b |"
)
CHAT = [
    {"role": "system", "content": "You answer in the language of the question."},
    {"role": "user", "content": "اشرح لي المعادلة $E = mc^2$ من فضلك؟"},
    {"role": "assistant", "content": "Which part? 🤔"},
    {"role": "user", "content": "كل شيء."},
]
MIXED = {"messages": CHAT, "responses": [ARABIC, MATH, TABLE, CODE]}
NINE = {"prompt": "Nine answers, one very long.", "responses": [LONG] + [EMOJI] * 8}


@pytest.fixture
def make_project():
    User = get_user_model()
    lead = User.objects.create_user(username="lead", password="unused-password")
    rater = User.objects.create_user(username="rita", password="unused-password")

    def make(records, **fields):
        fields.setdefault("overlap", 1)
        project = labeling_services.project_create(creator=lead, name="Content", **fields)
        Membership.objects.create(project=project, user=rater, role=Role.RATER)
        labeling_services.prompts_import(project=project, raw=json.dumps(records))
        return project, rater

    return make


def open_rater_page(open_as, make_project, records, viewport=WIDE, **options):
    project, rater = make_project(records)
    page = open_as(rater, f"/rate/{project.pk}/", viewport, **options)
    page.wait_for_selector(TASK)
    return page, project, rater


def card_with(page, text: str) -> str:
    """The label of the shown response whose text contains `text`."""
    label = page.evaluate(
        """([task, text]) => [...document.querySelectorAll(`${task} [data-card]`)]
            .find((card) => card.querySelector('[data-card-body]').textContent.includes(text))
            ?.dataset.label ?? null""",
        [TASK, text],
    )
    assert label, f"no response with {text!r}"
    return label


def body_of(page, text: str) -> str:
    return f"{TASK} [data-label={card_with(page, text)}] [data-card-body]"


def countdown(text: str) -> int:
    match = re.fullmatch(r"(\d+) s", text)
    assert match is not None, text
    return int(match.group(1))


def shown_id(page) -> int:
    return int(page.get_attribute(TASK, "data-assignment-id"))


def wait_for_other_task(page, previous: int) -> None:
    page.wait_for_function(
        f"() => (document.querySelector('{TASK}')?.dataset.assignmentId ?? '{previous}')"
        f" !== '{previous}'"
    )


# Right-to-left ------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_arabic_reads_right_to_left_with_its_list_and_punctuation(open_as, make_project, viewport):
    page, _, _ = open_rater_page(open_as, make_project, [MIXED, MIXED], viewport)
    body = body_of(page, "النقطة الأولى")
    layout = page.evaluate(
        """(body) => {
            const root = document.querySelector(body);
            const paragraphs = [...root.querySelectorAll('p')];
            const question = paragraphs.find((p) => p.textContent === 'هل هي واضحة؟');
            const english = paragraphs.find((p) => p.textContent.startsWith('An English'));
            const text = question.firstChild;
            const range = (start, end) => {
                const r = document.createRange();
                r.setStart(text, start);
                r.setEnd(text, end);
                return r.getBoundingClientRect();
            };
            const list = root.querySelector('ol');
            const item = list.querySelector('li');
            const box = (element) => element.getBoundingClientRect();
            return {
                direction: getComputedStyle(question).direction,
                englishDirection: getComputedStyle(english).direction,
                listDirection: getComputedStyle(list).direction,
                firstLetter: range(0, 1), mark: range(text.length - 1, text.length),
                paragraph: box(question), list: box(list), item: box(item),
            };
        }""",
        body,
    )
    assert layout["direction"] == "rtl"
    assert layout["englishDirection"] == "ltr"  # each block takes its own direction
    # The question mark ends the sentence on the left; the text starts at the right edge.
    assert layout["mark"]["x"] + layout["mark"]["width"] <= layout["firstLetter"]["x"] + 1
    right_edge = layout["paragraph"]["x"] + layout["paragraph"]["width"]
    assert abs(layout["firstLetter"]["x"] + layout["firstLetter"]["width"] - right_edge) < 2
    # List numbers sit on the right: the item's indent is on the right side of the list.
    assert layout["listDirection"] == "rtl"
    list_right = layout["list"]["x"] + layout["list"]["width"]
    item_right = layout["item"]["x"] + layout["item"]["width"]
    assert list_right - item_right > 10
    assert abs(layout["item"]["x"] - layout["list"]["x"]) < 1
    # The prompt's Arabic turn too.
    direction = page.evaluate(
        """(task) => getComputedStyle([...document.querySelectorAll(`${task} .turn-user .prose p`)]
            .find((p) => p.textContent.startsWith('اشرح'))).direction""",
        TASK,
    )
    assert direction == "rtl"


# Math -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_math_is_rendered_from_the_exact_source(open_as, make_project, viewport):
    page, _, _ = open_rater_page(open_as, make_project, [MIXED, MIXED], viewport)
    body = body_of(page, "The sum is")
    math = page.evaluate(
        """(body) => {
            const root = document.querySelector(body);
            const block = root.querySelector('math[display=block]');
            const fraction = block.querySelector('mfrac');
            const box = (element) => element.getBoundingClientRect();
            return {
                count: root.querySelectorAll('math').length,
                block: box(block),
                numerator: box(fraction.children[0]),
                denominator: box(fraction.children[1]),
                thinSpace: box(root.querySelector('mspace')).width,
                emphasis: root.querySelectorAll('em').length,
                fallback: [...root.querySelectorAll('.math-source')].map((e) => e.textContent),
                text: root.textContent,
                overflow: root.scrollWidth - root.clientWidth,
            };
        }""",
        body,
    )
    assert math["count"] == 4
    assert math["block"]["width"] > 0 and math["block"]["height"] > 20
    # A real fraction: the numerator is set above the denominator.
    assert math["numerator"]["y"] + math["numerator"]["height"] <= math["denominator"]["y"] + 1
    assert math["thinSpace"] > 0  # `\,` is a thin space, not a comma
    assert math["emphasis"] == 0  # `}_{` and `^{*}` were not taken for markdown italics
    assert math["fallback"] == ["$\\frac{1}{$"]  # exactly as written
    assert "\\sum" not in math["text"] and "\\," not in math["text"]
    assert math["overflow"] <= 1
    # In the prompt, within Arabic text, the formula still reads left to right.
    direction = page.evaluate(
        "(task) => getComputedStyle(document.querySelector(`${task} .turn-user math`)).direction",
        TASK,
    )
    assert direction == "ltr"


# Tables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_wide_tables_scroll_inside_their_card_without_breaking_words(
    open_as, make_project, viewport
):
    page, _, _ = open_rater_page(open_as, make_project, [MIXED, MIXED], viewport)
    body = body_of(page, "Subscription")
    table = page.evaluate(
        """(body) => {
            const root = document.querySelector(body);
            const scroller = root.querySelector('.table-scroll');
            const lines = [...root.querySelectorAll('th, td')].map((cell) => {
                const range = document.createRange();
                range.selectNodeContents(cell);
                return range.getClientRects().length;
            });
            return {
                scrollerWidth: scroller.clientWidth, tableWidth: scroller.scrollWidth,
                bodyOverflow: root.scrollWidth - root.clientWidth,
                card: root.closest('[data-card]').getBoundingClientRect().width,
                scrollerBox: scroller.getBoundingClientRect().width,
                maxLines: Math.max(...lines),
            };
        }""",
        body,
    )
    assert table["tableWidth"] > table["scrollerWidth"]  # too wide: it scrolls…
    assert table["bodyOverflow"] <= 1  # …inside its own box, not the card
    assert table["scrollerBox"] < table["card"]
    assert table["maxLines"] == 1  # no "Mon/thly"
    # A keyboard can scroll it: focus the table box, arrows scroll it and stay in the card.
    scroller = f"{body} .table-scroll"
    page.focus(scroller)
    label = card_with(page, "Subscription")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => document.querySelector('{scroller}').scrollLeft > 0")
    assert page.evaluate("() => document.activeElement.closest('[data-card]').dataset.label") == (
        label
    )


# Code -----------------------------------------------------------------------------------------


def test_code_is_highlighted_and_stays_inside_its_card(open_as, make_project):
    page, _, _ = open_rater_page(open_as, make_project, [MIXED, MIXED])
    body = body_of(page, "def step_0")
    code = page.evaluate(
        """(body) => {
            const root = document.querySelector(body);
            const pre = root.querySelector('pre');
            const color = (selector) => getComputedStyle(pre.querySelector(selector)).color;
            return {
                keywords: pre.querySelectorAll('.k').length,
                functions: pre.querySelectorAll('.nf').length,
                keyword: color('.k'), name: color('.n'), comment: color('.c1'),
                lines: pre.textContent.trimEnd().split('\\n').length,
                direction: getComputedStyle(pre).direction,
                overflow: root.scrollWidth - root.clientWidth,
            };
        }""",
        body,
    )
    assert code["keywords"] >= 128 and code["functions"] == 64
    assert len({code["keyword"], code["name"], code["comment"]}) == 3
    assert code["lines"] == 128
    assert code["direction"] == "ltr"
    assert code["overflow"] <= 1


# Emoji ----------------------------------------------------------------------------------------


def test_emoji_are_drawn_with_an_emoji_font(open_as, make_project):
    page, _, _ = open_rater_page(open_as, make_project, [NINE, NINE])
    page.evaluate(
        """(task) => [...document.querySelectorAll(`${task} .prose p`)]
            .find((p) => p.textContent === '😀🚀🎉').id = 'emoji-probe'""",
        TASK,
    )
    session = page.context.new_cdp_session(page)
    session.send("DOM.enable")
    session.send("CSS.enable")
    root = session.send("DOM.getDocument")["root"]["nodeId"]
    node = session.send("DOM.querySelector", {"nodeId": root, "selector": "#emoji-probe"})
    fonts = session.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
    names = [font["familyName"] for font in fonts]
    assert any("Emoji" in name for name in names), names
    assert all("Emoji" in name for name in names if name), names  # no tofu from a text font


# The preloaded task ---------------------------------------------------------------------------

PAGE_HEIGHT = """() => {
    const task = document.querySelector('#task-slot > .is-current');
    return {
        page: document.documentElement.scrollHeight,
        viewport: window.innerHeight,
        taskBottom: task.getBoundingClientRect().bottom + window.scrollY,
        next: document.querySelector('#task-slot > .is-next')?.getBoundingClientRect().height,
    };
}"""


def assert_preloaded_task_adds_no_height_or_focus(page) -> None:
    assert page.locator(NEXT).count() == 1
    sizes = page.evaluate(PAGE_HEIGHT)
    assert sizes["next"] == 0
    assert sizes["page"] > sizes["viewport"]  # a page that scrolls, so height counts
    # Below the task there is only the page's own bottom padding.
    assert sizes["page"] - sizes["taskBottom"] <= 40, sizes
    without = page.evaluate(
        """() => {
            const next = document.querySelector('#task-slot > .is-next');
            const parent = next.parentNode;
            next.remove();
            const height = document.documentElement.scrollHeight;
            parent.append(next);
            return height;
        }"""
    )
    assert without == sizes["page"]
    assert page.evaluate("() => document.querySelector('#task-slot > .is-next').inert")
    # Tab from the task's last control goes past the preloaded task, never into it.
    page.focus(f"{TASK} [data-skip-details] summary")
    for _ in range(4):
        page.keyboard.press("Tab")
        assert not page.evaluate(
            "() => Boolean(document.activeElement.closest('#task-slot > .is-next'))"
        )


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_preloaded_task_adds_no_height_and_takes_no_focus(open_as, make_project, viewport):
    # Shown: the chat with code and a table; preloaded: nine responses, one of 5,000 words.
    page, _, _ = open_rater_page(open_as, make_project, [MIXED, NINE, MIXED], viewport)
    assert "word4999" in page.locator(NEXT).text_content()
    assert_preloaded_task_adds_no_height_or_focus(page)
    # And so does the one after, parsed from the submit's answer.
    first = shown_id(page)
    page.focus(f"{TASK} [data-card-body]")
    for key in ("1", "2", "3", "4", "Enter"):
        page.keyboard.press(key)
    wait_for_other_task(page, first)
    page.wait_for_function("() => window.__ranklab.pending === 0")
    assert "word4999" in page.locator(TASK).text_content()
    assert "def step_0" in page.locator(NEXT).text_content()
    assert_preloaded_task_adds_no_height_or_focus(page)


# Nine responses, phone ------------------------------------------------------------------------


def test_nine_responses_rank_by_keys_on_a_phone(open_as, make_project):
    page, _, _ = open_rater_page(open_as, make_project, [NINE, NINE], NARROW)
    first = shown_id(page)
    boxes = [card.bounding_box() for card in page.locator(f"{TASK} .response").all()]
    assert len(boxes) == 9 and len({round(box["x"]) for box in boxes}) == 1
    assert all(box["width"] <= NARROW["width"] for box in boxes)
    for key in "123456789":
        page.keyboard.press(key)
    assert page.inner_text(f"{TASK} [data-summary]") == "A > B > C > D > E > F > G > H > I"
    page.keyboard.press("Enter")
    wait_for_other_task(page, first)
    page.wait_for_function("() => window.__ranklab.pending === 0")
    assignment = Assignment.objects.get(pk=first)
    assert Ranking.objects.get(assignment=assignment).groups == [
        [response] for response in assignment.shown_order
    ]
    assert page.evaluate("() => document.documentElement.scrollWidth") <= NARROW["width"]


# Undo -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_undo_sits_in_the_submit_bar_and_covers_nothing(open_as, make_project, viewport):
    page, _, _ = open_rater_page(
        open_as, make_project, [MIXED, MIXED, MIXED], viewport, fake_clock=True
    )
    first = shown_id(page)
    for key in ("1", "2", "3", "4", "Enter"):
        page.keyboard.press(key)
    wait_for_other_task(page, first)
    page.wait_for_selector("[data-undo-bar]:not([hidden])")
    undo = page.evaluate(
        """(task) => {
            const undo = document.querySelector('[data-undo-bar]');
            const bar = document.querySelector(`${task} .action-bar`);
            const fixed = [];
            for (let element = undo; element; element = element.parentElement) {
                if (getComputedStyle(element).position === 'fixed') fixed.push(element.className);
            }
            const inner = undo.getBoundingClientRect();
            const outer = bar.getBoundingClientRect();
            return {
                inBar: bar.contains(undo), fixed,
                inside: inner.top >= outer.top - 0.5 && inner.bottom <= outer.bottom + 0.5
                    && inner.left >= outer.left - 0.5 && inner.right <= outer.right + 0.5,
                visible: inner.bottom <= window.innerHeight && inner.top >= 0,
                left: document.querySelector('[data-undo-left]').textContent,
            };
        }""",
        TASK,
    )
    assert undo["inBar"] and undo["inside"] and undo["fixed"] == []
    assert undo["visible"]  # the bar is sticky at the bottom of the screen
    seconds = countdown(undo["left"])
    page.clock.run_for(5_000)
    later = countdown(page.inner_text("[data-undo-left]"))
    assert seconds - 6 <= later <= seconds - 4  # the countdown is visible and runs
    # The skip reasons below the bar are not covered by anything.
    page.keyboard.press("s")
    page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    for reason in page.locator(f"{TASK} .skip-reason").all():
        box = reason.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        assert page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.closest('.skip-reason') !== null",
            [x, y],
        ), reason.inner_text()
    assert page.locator("[data-undo-bar]").is_visible()
    page.clock.run_for(30_000)
    assert page.locator("[data-undo-bar]").is_hidden()


# Lease lost ------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_lost_lease_locks_the_task_and_offers_the_next(open_as, make_project, viewport):
    page, project, _ = open_rater_page(
        open_as, make_project, [MIXED, MIXED, MIXED], viewport, fake_clock=True
    )
    mine = Assignment.objects.get(pk=shown_id(page))
    past = timezone.now() - timedelta(minutes=20)
    Assignment.objects.filter(pk=mine.pk).update(
        leased_at=past, expires_at=past + timedelta(minutes=10)
    )
    other = get_user_model().objects.create_user(username="quick", password="unused-password")
    Membership.objects.create(project=project, user=other, role=Role.RATER)
    taken = labeling_services.lease_next_assignment(project=project, rater=other)
    assert taken is not None and taken.prompt_id == mine.prompt_id
    # Past half the lease, activity renews it: the server says it went to another rater.
    page.clock.fast_forward((project.lease_seconds // 2 + 10) * 1000)
    page.keyboard.press("ArrowRight")
    note = page.locator(f"{TASK} [data-locked-note]")
    note.wait_for(state="visible")
    assert "given to another rater" in note.inner_text()
    box = note.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]
    assert page.locator(f"{TASK} [data-submit]").is_hidden()
    enabled = page.locator(f"{TASK} form input:not([disabled]), {TASK} textarea:not([disabled])")
    assert enabled.count() == 0
    # Nothing can be changed or sent any more.
    page.focus(f"{TASK} [data-card-body]")
    for key in ("1", "2", "Enter"):
        page.keyboard.press(key)
    assert page.inner_text(f"{TASK} [data-label=A] [data-rank-badge]") == ""
    page.keyboard.press("n")
    wait_for_other_task(page, mine.pk)
    assert page.locator(f"{TASK} [data-locked-note]").is_hidden()
    assert page.locator(f"{TASK} [data-submit]").is_visible()
    assert not Ranking.objects.filter(assignment=mine).exists()


# Full width -----------------------------------------------------------------------------------


def test_a_key_and_a_button_show_one_response_at_full_width(open_as, make_project):
    long_one = {"prompt": "Three answers", "responses": ["short", LONG, "also short"]}
    page, _, _ = open_rater_page(open_as, make_project, [long_one, long_one])
    label = card_with(page, "word4999")
    card = f"{TASK} [data-label={label}]"
    measure = """(card) => {
        const element = document.querySelector(card);
        const body = element.querySelector('[data-card-body]');
        return {
            width: element.getBoundingClientRect().width,
            grid: element.parentElement.getBoundingClientRect().width,
            hiddenText: body.scrollHeight - body.clientHeight,
            pressed: element.querySelector('[data-expand]').getAttribute('aria-pressed'),
        };
    }"""
    before = page.evaluate(measure, card)
    assert before["width"] < before["grid"] / 2 and before["hiddenText"] > 0

    page.click(f"{card} [data-card-body]")
    page.keyboard.press("f")
    wide = page.evaluate(measure, card)
    assert abs(wide["width"] - wide["grid"]) < 1
    assert wide["hiddenText"] <= 1  # the whole answer, no scrolling inside the card
    assert wide["pressed"] == "true"
    page.keyboard.press("f")
    assert page.evaluate(measure, card)["width"] == before["width"]

    page.click(f"{card} [data-expand]")
    assert abs(page.evaluate(measure, card)["width"] - wide["grid"]) < 1
    page.click(f"{card} [data-expand]")
    assert page.evaluate(measure, card)["pressed"] == "false"
    page.keyboard.press("?")
    assert "full width" in page.inner_text("#keys-dialog")


# Hostile content ------------------------------------------------------------------------------

NO_ACTIVE_CONTENT = """() => {
    const found = [];
    for (const element of document.querySelectorAll('#task-slot *')) {
        const tag = element.localName;
        if (['script', 'img', 'iframe', 'object', 'embed', 'svg', 'style'].includes(tag)) {
            found.push(tag);
        }
        for (const attribute of element.attributes) {
            const value = attribute.value.replace(/\\s/g, '').toLowerCase();
            if (attribute.name.startsWith('on') || value.startsWith('javascript:')
                || attribute.name === 'style'
                || (attribute.name === 'href' && tag !== 'a')) {
                found.push(`${tag}[${attribute.name}]`);
            }
        }
    }
    return found;
}"""


def test_hostile_content_stays_inert_with_math_and_highlighting(open_as, make_project):
    records = [{"prompt": HOSTILE, "responses": [HOSTILE, MATH, CODE]} for _ in range(2)]
    page, _, _ = open_rater_page(open_as, make_project, records)
    dialogs: list[str] = []

    def dismiss(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    first = shown_id(page)

    def assert_inert() -> None:
        page.wait_for_timeout(200)
        assert dialogs == []
        assert page.evaluate("() => window.__xss") is None
        assert page.evaluate(NO_ACTIVE_CONTENT) == []
        assert page.locator(f"{TASK} math").count() >= 5  # math is on…
        assert page.locator(f"{TASK} pre .k").count() > 0  # …and so is highlighting
        assert "<script>window.__xss" in page.inner_text(f"{TASK} .conversation")

    assert_inert()
    for key in ("1", "2", "3", "Enter"):
        page.keyboard.press(key)
    wait_for_other_task(page, first)  # the preloaded task
    assert_inert()


# Content-Security-Policy -------------------------------------------------------------------


def test_the_page_works_under_a_policy_without_inline_script_or_style(
    open_as, make_project, live_server
):
    """`script-src 'self'; style-src 'self'`: every action, not one violation reported."""
    project, rater = make_project([MIXED, MIXED, MIXED])

    def with_policy(route):
        response = route.fetch()
        headers = {
            **response.headers,
            "content-security-policy": "script-src 'self'; "
            "style-src 'self'; object-src 'none'; base-uri 'none'",
        }
        route.fulfill(response=response, headers=headers)

    page = open_as(rater, "/login/")
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation', (event) =>"
        " window.__violations.push(`${event.violatedDirective} ${event.sourceFile}`));"
    )
    page.route(re.compile(r".*/rate/\d+/$"), with_policy)
    page.goto(f"{live_server.url}/rate/{project.pk}/")
    page.wait_for_selector(TASK)
    first = shown_id(page)
    page.keyboard.press("f")
    page.keyboard.press("f")
    for key in ("1", "2", "3", "4", "Enter"):
        page.keyboard.press(key)
    wait_for_other_task(page, first)
    page.wait_for_selector("[data-undo-bar]:not([hidden])")
    page.keyboard.press("u")
    page.wait_for_function(
        f"() => document.querySelector('{TASK}')?.dataset.assignmentId === '{first}'"
    )
    page.drag_and_drop(f"{TASK} .chip[data-chip=B]", f"{TASK} [data-slot='1']")
    page.keyboard.press("?")
    page.keyboard.press("Escape")
    assert page.evaluate("() => window.__violations") == []


# Screenshot -----------------------------------------------------------------------------------


def test_screenshot_of_untuned_content(open_as, make_project):
    """Arabic, math, a wide table and code side by side; undo waiting beside Submit."""
    page, _, _ = open_rater_page(
        open_as, make_project, [MIXED, MIXED], {"width": 1440, "height": 900}
    )
    first = shown_id(page)
    for key in ("1", "2", "3", "4", "Enter"):
        page.keyboard.press(key)
    wait_for_other_task(page, first)
    page.wait_for_selector("[data-undo-bar]:not([hidden])")
    boxes = [card.bounding_box() for card in page.locator(f"{TASK} .response").all()]
    assert len({round(box["y"]) for box in boxes}) == 1, "four side by side"
    page.keyboard.press("2")
    page.evaluate("() => window.scrollTo(0, 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "rater-content.png"))
