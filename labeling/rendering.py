"""Markdown to sanitized HTML: model responses and prompts are untrusted input.

A rater must judge what the model wrote, shown faithfully: math (`$…$`, `$$…$$`, `\\(…\\)`,
`\\[…\\]`) is taken out before markdown can touch it and becomes MathML, which browsers
render natively (the exact source is shown when it can't be converted); fenced code is
highlighted by Pygments into CSS classes; every top-level block carries `dir="auto"` so
right-to-left text reads right to left; tables sit in a box that scrolls sideways. No
inline style and no script is produced, and the result is cleaned against an allow-list.
Renderings are cached by a hash of the text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import nh3
from django.core.cache import cache
from latex2mathml.converter import convert as latex_to_mathml
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

# Bump when the output changes, so cached renderings of the old shape are not served.
RENDER_VERSION = 1
CACHE_SECONDS = 24 * 3600
MAX_MATH_CHARS = 4000
MAX_HIGHLIGHT_CHARS = 100_000

MATHML_TAGS = {
    "math", "mrow", "mi", "mo", "mn", "ms", "mtext", "mspace", "msup", "msub", "msubsup",
    "mfrac", "msqrt", "mroot", "mstyle", "mpadded", "mphantom", "menclose", "merror",
    "mover", "munder", "munderover", "mmultiscripts", "mprescripts", "none",
    "mtable", "mtr", "mtd",
}  # fmt: skip
ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "div",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "a", "span",
} | MATHML_TAGS  # fmt: skip
# `dir` only ever comes from this renderer (markdown's raw HTML is off), and no MathML
# element may carry a link: `href` is allowed on <a> alone.
_MATH_LAYOUT = {"mathvariant", "displaystyle", "scriptlevel", "mathcolor", "mathbackground"}
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "code": {"class"},
    "pre": {"dir"},
    "ol": {"start", "dir"},
    **{tag: {"dir"} for tag in ("p", "ul", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6")},
    "div": {"dir", "tabindex"},
    "math": {"display", "dir"},
    "mi": {"mathvariant"},
    "mo": {
        "stretchy", "fence", "separator", "lspace", "rspace", "form", "largeop",
        "movablelimits", "symmetric", "minsize", "maxsize", "accent",
    },
    "mstyle": _MATH_LAYOUT,
    "mspace": {"width", "height", "depth"},
    "mpadded": {"width", "height", "depth", "lspace", "voffset"},
    "mfrac": {"linethickness"},
    "mover": {"accent"},
    "munder": {"accentunder"},
    "munderover": {"accent", "accentunder"},
    "menclose": {"notation"},
    "mtable": {"columnalign", "rowalign", "rowspacing", "columnspacing", "rowlines",
               "columnlines", "frame", "displaystyle"},
    "mtr": {"columnalign", "rowalign"},
    "mtd": {"columnalign", "rowalign", "columnspan", "rowspan"},
}  # fmt: skip
HIGHLIGHT_CLASSES = {name for name in STANDARD_TYPES.values() if name}
ALIGN_CLASSES = {"align-left", "align-center", "align-right"}
ALLOWED_CLASSES = {
    "span": HIGHLIGHT_CLASSES | {"math-source"},
    "div": {"table-scroll", "math-source"},
    "th": ALIGN_CLASSES,
    "td": ALIGN_CLASSES,
}
URL_SCHEMES = {"http", "https", "mailto"}

# Top-level blocks that take their direction from their own first strong character; what
# they hold (list items, a quote's paragraphs, table cells) follows them.
_DIRECTED_BLOCKS = {
    "paragraph_open", "heading_open", "bullet_list_open", "ordered_list_open",
    "blockquote_open",
}  # fmt: skip
_LANGUAGE_NAME = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")
_TABLE_ALIGN = re.compile(r"text-align:\s*(left|center|right)")
# latex2mathml passes unknown commands through as text (`<mi>\foo</mi>`): not rendered.
_UNCONVERTED_COMMAND = re.compile(r">\\[A-Za-z]")


# Public ----------------------------------------------------------------------------------------


def render_markdown(text: str) -> str:
    """Render markdown and sanitize the result with an allow-list; safe to mark safe."""
    text = text or ""
    if len(text) < 200:  # not worth a cache round trip
        return render_markdown_uncached(text)
    key = f"ranklab:markdown:{RENDER_VERSION}:{hashlib.sha256(text.encode()).hexdigest()}"
    cached: str | None = cache.get(key)
    if cached is not None:
        return cached
    html = render_markdown_uncached(text)
    cache.set(key, html, CACHE_SECONDS)
    return html


def render_markdown_uncached(text: str) -> str:
    return sanitize(markdown_parser().render(text or ""))


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener noreferrer",
    )


def render_math(source: str, *, display: bool) -> str | None:
    """MathML for a LaTeX formula, or None when it can't be converted faithfully."""
    if not source.strip() or len(source) > MAX_MATH_CHARS:
        return None
    try:
        mathml = latex_to_mathml(source, display="block" if display else "inline")
    except Exception:  # the converter raises many kinds on malformed input
        return None
    if _UNCONVERTED_COMMAND.search(mathml):
        return None
    # Formulas are written left to right even inside right-to-left text.
    return mathml.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "").replace(
        "<math ", '<math dir="ltr" ', 1
    )


def highlight_code(code: str, language: str) -> str | None:
    """Highlighted HTML (spans with Pygments' short classes), or None if not highlightable."""
    lexer = _lexer(language.lower()) if language else None
    if lexer is None or len(code) > MAX_HIGHLIGHT_CHARS:
        return None
    highlighted: str = highlight(code, lexer, _formatter())
    return highlighted


# The parser ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def markdown_parser() -> MarkdownIt:
    # html=False: raw HTML in the source is shown as text, never passed through.
    md = (
        MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
        .enable("table")
        .enable("strikethrough")
        .use(
            dollarmath_plugin,
            allow_labels=False,
            allow_space=False,  # "$ 5 and $ 6" is money, not math
            allow_digits=False,  # so is "$5 and $6"
            double_inline=True,
        )
    )
    md.inline.ruler.before("escape", "math_brackets", _inline_bracket_math)
    md.block.ruler.before(
        "fence", "math_block_brackets", _block_bracket_math, {"alt": ["paragraph"]}
    )
    md.core.ruler.push("direction_and_alignment", _direction_and_alignment)
    md.add_render_rule("math_inline", _render_inline_math)
    for name in ("math_inline_double", "math_inline_display"):
        md.add_render_rule(name, _render_display_inline_math)
    md.add_render_rule("math_block", _render_block_math)
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("code_block", _render_fence)
    md.add_render_rule("table_open", _render_table_open)
    md.add_render_rule("table_close", _render_table_close)
    return md


_BRACKETS = {"(": ("\\)", "math_inline"), "[": ("\\]", "math_inline_display")}


def _inline_bracket_math(state: StateInline, silent: bool) -> bool:
    r"""`\(…\)` inline and `\[…\]` within a line: before markdown's escapes eat the `\`."""
    src, pos = state.src, state.pos
    if src[pos] != "\\" or pos + 1 >= state.posMax or src[pos + 1] not in _BRACKETS:
        return False
    closer, kind = _BRACKETS[src[pos + 1]]
    end = _find_closer(state, closer, pos + 2)
    if end < 0 or not src[pos + 2 : end].strip():
        return False
    if not silent:
        token = state.push(kind, "math", 0)
        token.content = src[pos + 2 : end]
        token.markup = src[pos : pos + 2]
    state.pos = end + 2
    return True


def _find_closer(state: StateInline, closer: str, start: int) -> int:
    # Remember, per inline text, where no closer follows: a text full of openers stays linear.
    none_after = state.env.setdefault("math_no_closer_after", {})
    key = (closer, state.src)
    if start >= none_after.get(key, len(state.src) + 1):
        return -1
    end = state.src.find(closer, start, state.posMax)
    if end < 0:
        none_after[key] = min(start, none_after.get(key, start))
    return end


def _block_bracket_math(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    r"""A display formula `\[ … \]` starting a line; it may span lines."""
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False
    begin = state.bMarks[start_line] + state.tShift[start_line]
    if not state.src.startswith("\\[", begin):
        return False
    line = start_line
    search_from = begin + 2
    while line < end_line:
        line_end = state.eMarks[line]
        close = state.src.find("\\]", search_from, line_end)
        if close >= 0:
            if state.src[close + 2 : line_end].strip():
                return False  # text after the formula: an inline one within a paragraph
            break
        line += 1
        if line < end_line:
            if state.isEmpty(line):
                return False
            search_from = state.bMarks[line] + state.tShift[line]
    else:
        return False
    if silent:
        return True
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = state.src[begin + 2 : close]
    token.markup = "\\["
    token.map = [start_line, line + 1]
    state.line = line + 1
    return True


def _direction_and_alignment(state: StateCore) -> None:
    for token in state.tokens:
        if token.level == 0 and token.type in _DIRECTED_BLOCKS:
            token.attrSet("dir", "auto")
        if token.type in ("th_open", "td_open"):
            match = _TABLE_ALIGN.search(str(token.attrGet("style") or ""))
            if token.attrs.pop("style", None) is not None and match:
                token.attrSet("class", f"align-{match.group(1)}")


# Rendering rules -------------------------------------------------------------------------------


def _math_or_source(token: Token, *, display: bool, block: bool) -> str:
    mathml = render_math(token.content, display=display)
    if mathml is not None:
        return mathml
    closing = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}.get(token.markup, "")
    source = escapeHtml(f"{token.markup}{token.content}{closing}")
    if block:
        return f'<div class="math-source" dir="ltr">{source}</div>\n'
    return f'<span class="math-source">{source}</span>'


def _render_inline_math(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any
) -> str:
    return _math_or_source(tokens[idx], display=False, block=False)


def _render_display_inline_math(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any
) -> str:
    return _math_or_source(tokens[idx], display=True, block=False)


def _render_block_math(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return _math_or_source(tokens[idx], display=True, block=True) + "\n"


def _render_fence(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    info = token.info.strip().split(maxsplit=1) if token.type == "fence" else []
    language = info[0] if info and _LANGUAGE_NAME.fullmatch(info[0]) else ""
    body = highlight_code(token.content, language) or escapeHtml(token.content)
    language_class = f' class="language-{language}"' if language else ""
    # Code reads left to right whatever the text around it.
    return f'<pre dir="ltr"><code{language_class}>{body}</code></pre>\n'


def _render_table_open(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    # Focusable so a keyboard can scroll a wide table; its direction follows its text.
    return '<div class="table-scroll" dir="auto" tabindex="0">\n<table>\n'


def _render_table_close(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any
) -> str:
    return "</table>\n</div>\n"


@lru_cache(maxsize=256)
def _lexer(language: str) -> Lexer | None:
    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


@lru_cache(maxsize=1)
def _formatter() -> HtmlFormatter[str]:
    return HtmlFormatter(nowrap=True)
