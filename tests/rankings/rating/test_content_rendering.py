"""Model output as the rater sees it: math, code, tables and right-to-left text rendered
faithfully, and the sanitizer as strict as ever (labeling.rendering)."""

from __future__ import annotations

import json
import random
import re
from html.parser import HTMLParser

import pytest
from django.core.cache import cache

from labeling import rendering
from labeling import services as labeling_services
from labeling.models import Response
from labeling.rendering import render_markdown, render_markdown_uncached
from tests.rankings.rating.page_helpers import (
    JSON,
    action_url,
    current_task,
    rank_fields,
    rate_url,
)


class Elements(HTMLParser):
    """Every start tag with its attributes, for checks on the rendered HTML."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def assert_inert(html: str) -> None:
    """No script, no event handler, no javascript: URL, no inline style, no link on math."""
    elements = Elements(html)
    for tag, attrs in elements.tags:
        assert tag not in {"script", "style", "iframe", "object", "embed", "img", "svg"}, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name not in {"style", "src", "xlink:href", "srcdoc"}, (tag, name)
            assert "javascript:" not in (value or "").lower().replace(" ", ""), (tag, name)
            if name == "href":
                assert tag == "a", tag


# Math ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        r"The integral $\int_0^1 x \, dx = \frac{1}{2}$ holds.",
        r"The integral \(\int_0^1 x \, dx = \frac{1}{2}\) holds.",
        "The integral\n\n$$\n\\int_0^1 x \\, dx = \\frac{1}{2}\n$$\n\nholds.",
        "The integral\n\n\\[\n\\int_0^1 x \\, dx = \\frac{1}{2}\n\\]\n\nholds.",
        r"The integral \[\int_0^1 x \, dx = \frac{1}{2}\] holds, inline.",
    ],
)
def test_math_in_every_delimiter_becomes_mathml_untouched_by_markdown(source):
    html = render_markdown_uncached(source)
    assert html.count("<math") == 1
    assert "<mfrac>" in html
    assert "<mspace" in html  # `\,` is a thin space, not a comma
    assert "\\" not in html and "<em>" not in html
    display = "block" if "$$" in source or "\\[" in source else "inline"
    assert f'display="{display}"' in html
    assert '<math dir="ltr"' in html  # formulas read left to right in Arabic text too


def test_subscripts_in_math_are_not_taken_for_emphasis():
    html = render_markdown_uncached(r"$x_{i}^{2} + y_{j}^{*} + z_{k}$ and *real emphasis*")
    assert html.count("<em>") == 1
    assert "<em>real emphasis</em>" in html
    assert html.count("<msubsup>") == 2


@pytest.mark.parametrize(
    "source",
    [r"$\frac{1}{$", r"$x^$", r"$\notacommand{x}$", r"\(\left( x\)", r"$a_{1}_{2}$"],
)
def test_math_that_cannot_be_converted_is_shown_exactly_as_written(source):
    html = render_markdown_uncached(f"Before {source} after")
    assert "<math" not in html
    span = re.search(r'<span class="math-source">(.*?)</span>', html)
    assert span is not None
    assert span.group(1).replace("&lt;", "<").replace("&gt;", ">") == source


def test_a_display_formula_that_fails_keeps_its_source_and_lines():
    source = "$$\n\\left( x\n+ 2\n$$"
    html = render_markdown_uncached(source)
    assert '<div class="math-source" dir="ltr">$$\n\\left( x\n+ 2\n$$</div>' in html


@pytest.mark.parametrize(
    "source",
    [
        "It costs $5 and $10.",
        "Prices: $ 5 and $ 10",
        r"Escaped \$x\$ stays text",
        "`$x$` is code",
        "```\n$x$ and \\(y\\)\n```",
    ],
)
def test_money_escaped_dollars_and_code_are_not_math(source):
    assert "<math" not in render_markdown_uncached(source)


def test_many_unclosed_openers_render_in_linear_time():
    source = "\\(" * 20_000 + " $a" * 5_000
    html = render_markdown_uncached(source)
    assert "<math" not in html and "(((" in html


def test_an_unclosed_opener_does_not_hide_formulas_in_later_paragraphs():
    html = render_markdown_uncached(
        "\\( and \\[ unclosed.\n\nThen, after a few more words, \\(x^2\\) and \\[y_1\\]."
    )
    assert html.count("<math") == 2
    assert "(" in html.split("</p>")[0]


def test_a_link_smuggled_in_math_is_dropped():
    html = render_markdown_uncached(r"$\href{javascript:alert(1)}{x}$ and $\color{red}{y}$")
    assert "<math" in html
    assert "href" not in html and "javascript" not in html
    assert_inert(html)


# Code ---------------------------------------------------------------------------------------


def test_fenced_code_is_highlighted_with_classes_only():
    code = "def greet(name: str) -> str:\n    return f'<b>{name}</b>'  # hi\n"
    html = render_markdown_uncached(f"```python\n{code}```")
    assert html.startswith('<pre dir="ltr"><code class="language-python">')
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">greet</span>' in html
    assert '<span class="c1"># hi</span>' in html
    assert "&lt;b&gt;" in html and "<b>" not in html
    classes = set(re.findall(r'<span class="([^"]+)"', html))
    assert classes and classes <= rendering.HIGHLIGHT_CLASSES
    text = re.sub(r"<[^>]+>", "", html).replace("&lt;", "<").replace("&gt;", ">")
    assert text.replace("&#x27;", "'").replace("&quot;", '"').strip() == code.strip()


@pytest.mark.parametrize("fence", ["```\n", "```no-such-language\n", "    "])
def test_code_without_a_known_language_is_plain_escaped_text(fence):
    source = (
        f"{fence}<script>alert(1)</script>\n```"
        if fence.startswith("```")
        else ("    <script>alert(1)</script>")
    )
    html = render_markdown_uncached(source)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<span" not in html
    assert '<pre dir="ltr">' in html


# Direction and tables -------------------------------------------------------------------------


def test_each_top_level_block_takes_its_own_direction():
    html = render_markdown_uncached(
        "مرحبا بالعالم. كيف حالك؟\n\nAn English paragraph.\n\n# عنوان\n\n"
        "1. أولا\n2. ثانيا\n\n- one\n\n  still one\n- two\n\n> اقتباس\n> بقية"
    )
    assert html.count('dir="auto"') == 6  # 2 paragraphs, heading, 2 lists, quote
    assert '<ol dir="auto">\n<li>أولا</li>' in html
    # What a list or a quote holds follows the list or quote, so it has no dir of its own.
    assert "<li dir" not in html and '<p dir="auto">still one' not in html
    assert '<blockquote dir="auto">\n<p>اقتباس' in html


def test_tables_scroll_in_their_own_box_and_keep_alignment_without_styles():
    html = render_markdown_uncached(
        "| Month | Amount | Note |\n|:---|---:|:---:|\n| Monthly | 1,200 | مرحبا |"
    )
    assert html.startswith('<div class="table-scroll" dir="auto" tabindex="0">\n<table>')
    assert html.rstrip().endswith("</table>\n</div>")
    assert '<th class="align-left">Month</th>' in html
    assert '<td class="align-right">1,200</td>' in html
    assert '<td class="align-center">مرحبا</td>' in html
    assert "style" not in html


# Sanitizing ---------------------------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction></math>',
    '<a href="javascript:alert(1)">a</a>',
    "<svg onload=alert(1)>",
    '<div style="position:fixed">x</div>',
    r"$\href{javascript:alert(1)}{x}$",
    r"$\style{color:red}{x}$",
    r"$$\unicode{x3c}script$$",
    "```html\n<script>alert(1)</script>\n```",
    "| <script>x</script> | onerror= |\n|---|---|\n| <img src=x onerror=alert(1)> | b |",
    "\\(<img src=x onerror=alert(1)>\\)",
]
BENIGN = ["$x^2$", "**bold**", "- item", "مرحبا", "😀 ok", "`code`", "\n\n", "\\[y\\]", "$$z$$"]


def test_hostile_input_mixed_with_math_and_code_stays_inert():
    random_source = random.Random(15)
    for _ in range(300):
        parts = random_source.choices(HOSTILE + BENIGN, k=random_source.randint(1, 8))
        html = render_markdown_uncached(random_source.choice([" ", "\n", "\n\n"]).join(parts))
        assert_inert(html)
    for payload in HOSTILE:
        assert_inert(render_markdown_uncached(payload))


def test_allow_list_has_no_link_or_handler_attributes_on_math():
    for tag in rendering.MATHML_TAGS:
        allowed = rendering.ALLOWED_ATTRIBUTES.get(tag, set())
        assert not {name for name in allowed if name.startswith("on") or "href" in name}
        assert "style" not in allowed and "class" not in allowed


# Cache --------------------------------------------------------------------------------------


def test_renderings_are_cached_by_a_hash_of_the_text(monkeypatch):
    cache.clear()
    calls: list[str] = []
    real = rendering.render_markdown_uncached

    def counting(text: str) -> str:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(rendering, "render_markdown_uncached", counting)
    long_text = "```python\nprint('cached')\n```\n\n" + "A sentence of a long answer. " * 20
    first = render_markdown(long_text)
    assert render_markdown(long_text) == first == real(long_text)
    assert render_markdown(long_text + "!") != first
    assert len(calls) == 2  # once per distinct text
    render_markdown("short")
    render_markdown("short")
    assert calls[2:] == ["short", "short"]  # too short to be worth a cache round trip


# The page ----------------------------------------------------------------------------------

RICH = {
    "messages": [
        {"role": "user", "content": "اشرح المعادلة $E = mc^2$ من فضلك؟"},
        {"role": "assistant", "content": "Which part? 🤔"},
        {"role": "user", "content": "| Monthly | Quarterly |\n|---|---|\n| 1 | 3 |"},
    ],
    "responses": [
        "```python\nimport math\nprint(math.pi)\n```",
        r"We have \[\sum_{i=1}^{n} i = \frac{n(n+1)}{2}\] 🎉",
        "<script>alert(1)</script><img src=x onerror=alert(1)> $\\href{javascript:x}{y}$",
    ],
}


@pytest.mark.django_db
def test_the_page_and_its_task_fragments_need_no_inline_script_or_style(
    rater_client, rater, project
):
    """Ready for `script-src 'self'; style-src 'self'`: nothing inline, all in static files."""
    labeling_services.prompts_import(project=project, raw=json.dumps([RICH, RICH, RICH]))
    page = rater_client.get(rate_url(project)).content.decode()
    assignment = current_task(rater_client, project, rater)
    answer = rater_client.post(
        action_url("submit", assignment), rank_fields(assignment), **JSON
    ).json()
    fragments = [answer["current"]["html"] or "", answer["following"]["html"] or ""]
    for html in [page, *fragments]:
        elements = Elements(html)
        assert not [attrs for attrs in elements.named("script") if "src" not in attrs]
        assert not elements.named("style")
        assert not [(tag, attrs) for tag, attrs in elements.tags if "style" in attrs]
        assert not [(tag, n) for tag, attrs in elements.tags for n in attrs if n.startswith("on")]
    assert "<math" in page and '<span class="kn">import</span>' in page
    assert '<div class="table-scroll"' in page and 'dir="auto"' in page
    assert 'href="javascript' not in page.lower()


@pytest.mark.django_db
def test_responses_are_rendered_once_per_text_across_requests(rater_client, project, monkeypatch):
    cache.clear()
    text = "A long answer with code:\n\n```python\nx = 1\n```\n\n" + "More words here. " * 30
    labeling_services.prompts_import(
        project=project,
        raw=json.dumps([{"prompt": f"q{i}", "responses": [text, f"short {i}"]} for i in range(3)]),
    )
    assert Response.objects.filter(text=text).count() == 3
    calls: list[str] = []
    real = rendering.render_markdown_uncached

    def counting(source: str) -> str:
        calls.append(source)
        return real(source)

    monkeypatch.setattr(rendering, "render_markdown_uncached", counting)
    rater_client.get(rate_url(project))
    rater_client.get(rate_url(project))
    assert calls.count(text) == 1
