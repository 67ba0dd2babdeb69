"""The dataset card (README.md) of an export: Hugging Face YAML metadata, then how the data
was made, rendered from the facts `exports.selectors.card` gathers.

Pure and deterministic: the same facts give the same text (no clock, no job id), so the
same parameters over the same data give the same card. Project text (its name, the
guidelines) is untrusted: in the YAML it is a double-quoted scalar with every character
that could end it escaped; in the body the name is one line of escaped markdown and the
guidelines sit in a code fence longer than any run of backticks inside them.

Over 400 lines because most of it is the card's text and the YAML quoting that keeps
untrusted project text from breaking it; the two belong together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from exports.pairs import RankingData

DATA_FOLDER = "data"
CARD_NAME = "README.md"
_SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
)
_COMMON_TAGS = ("ranklab", "preference", "rlhf", "human-feedback")
_NAME_CHARS = 200


@dataclass
class CardTally:
    """Who and how much an export's rows come from, counted prompt by prompt as the export
    runs (`exports.services.batches.export_batches`); only prompts that gave rows count."""

    rater_keys: set[str] = field(default_factory=set)
    rankings: int = 0
    prompts: int = 0
    fewest_rankings: int = 0
    most_rankings: int = 0

    def add(self, rankings: list[RankingData]) -> None:
        count = len(rankings)
        self.rater_keys.update(ranking.rater_key for ranking in rankings)
        self.rankings += count
        self.fewest_rankings = min(self.fewest_rankings, count) if self.prompts else count
        self.most_rankings = max(self.most_rankings, count)
        self.prompts += 1


@dataclass(frozen=True)
class DataFile:
    split: str
    """`train`, `test`, or `all` (the combined file of a split export)."""
    rows: int
    sha256: str
    size_bytes: int
    container: str

    @property
    def path(self) -> str:
        """Where the card expects the file, relative to it (how the archive lays it out)."""
        return data_file_path(self.split, self.container)


@dataclass(frozen=True)
class Figure:
    """One agreement statistic of a run, with its bootstrap interval."""

    label: str
    value: float | None
    low: float | None
    high: float | None
    units: int
    unit_name: str


@dataclass(frozen=True)
class AgreementFacts:
    """The newest finished agreement run that saw no ranking newer than the export."""

    last_ranking_id: int
    rankings: int
    prompts: int
    raters: int
    figures: tuple[Figure, ...]


@dataclass(frozen=True)
class CardFacts:
    project_name: str
    guidelines: str
    format: str
    format_label: str
    format_summary: str
    format_tags: tuple[str, ...]
    strategy_label: str
    container: str
    columns: tuple[tuple[str, str], ...]
    """(name, value type) of every column, in file order."""
    parameters: tuple[tuple[str, str], ...]
    """(name, value as shown) of every export parameter."""
    rows: int
    prompts: int
    files: tuple[DataFile, ...]
    last_ranking_id: int
    overlap: int
    max_overlap: int | None
    """Adaptive overlap's ceiling, None without adaptive overlap."""
    allow_ties: bool
    gold_rate: float
    repeat_rate: float
    include_gold: bool
    raters: int
    """Distinct raters behind the exported rows."""
    rankings: int
    fewest_rankings: int
    most_rankings: int
    excluded_raters: int
    excluded_left_out: bool
    flagged_raters: int
    flagged_left_out: bool
    flags: tuple[tuple[str, int], ...]
    """(flag reason, raters with that open flag)."""
    soft_labels: bool
    agreement: AgreementFacts | None


def data_file_path(split: str, container: str) -> str:
    return f"{DATA_FOLDER}/{split}.{container}"


def size_category(rows: int) -> str:
    """The Hugging Face `size_categories` bucket of a row count."""
    for bound, name in _SIZE_CATEGORIES:
        if rows < bound:
            return name
    return "n>10B"


# --- escaping untrusted text ----------------------------------------------------------------

_YAML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def yaml_string(text: str) -> str:
    """`text` as a YAML double-quoted scalar that no input can end early.

    Quotes and backslashes are escaped, and so is every character that is not printable
    (controls, line and paragraph separators, NEL, BOM, lone surrogates): a YAML reader
    would fold or refuse them. Printable non-ASCII stays as it is.
    """
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _YAML_ESCAPES:
            out.append(_YAML_ESCAPES[char])
        elif 0x20 <= code < 0x7F or (code > 0xA0 and char.isprintable()):
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&=:\"'$%@^])")


def markdown_line(text: str, limit: int = _NAME_CHARS) -> str:
    """Untrusted text as one line of plain markdown: whitespace collapsed, every markdown
    or HTML character backslash-escaped, at most `limit` characters of the text."""
    words = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(words) > limit:
        words = words[:limit] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", words)


def fenced(text: str) -> str:
    """Untrusted text as a fenced code block it cannot close: the fence is longer than
    any run of backticks in it. Lone surrogates (no UTF-8 for them) become `?`."""
    body = text.encode("utf-8", "replace").decode("utf-8")
    body = body.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


# --- the card -------------------------------------------------------------------------------


def _yaml_list(key: str, values: tuple[str, ...] | list[str]) -> list[str]:
    return [f"{key}:", *(f"- {yaml_string(value)}" for value in values)]


def front_matter(facts: CardFacts) -> str:
    """The Hugging Face metadata block, `---` to `---`."""
    tags = [*_COMMON_TAGS, *facts.format_tags] + (["soft-labels"] if facts.soft_labels else [])
    lines = [
        "---",
        "# The project lead chooses the license: set it before publishing (e.g. cc-by-4.0).",
        "license: null",
        f"pretty_name: {yaml_string(facts.project_name)}",
        *_yaml_list("annotations_creators", ["crowdsourced"]),
        *_yaml_list("task_categories", ["text-generation"]),
        *_yaml_list("size_categories", [size_category(facts.rows)]),
        *_yaml_list("tags", list(dict.fromkeys(tags))),
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for data_file in _split_files(facts):
        lines += [
            f"  - split: {yaml_string(data_file.split)}",
            f"    path: {yaml_string(data_file.path)}",
        ]
    return "\n".join([*lines, "---"])


def _split_files(facts: CardFacts) -> list[DataFile]:
    """The files of the `configs` splits: train and test, or the one file as train. A split
    without rows is left out (readers refuse an empty split) unless nothing has rows."""
    split = [data_file for data_file in facts.files if data_file.split != "all"]
    with_rows = [data_file for data_file in split if data_file.rows]
    return with_rows or split[:1]


def render_card(facts: CardFacts) -> str:
    """The whole README.md."""
    sections = [
        front_matter(facts),
        f"# {markdown_line(facts.project_name) or 'Ranklab export'}",
        f"Preference data from the Ranklab project named above: {facts.rows:,} rows from "
        f"{facts.prompts:,} prompts, in the **{facts.format_label}** format "
        f"(`{facts.format}`). {facts.format_summary}",
        _files_section(facts),
        _columns_section(facts),
        "## Annotation process",
        _guidelines_section(facts),
        _raters_section(facts),
        _gold_section(facts),
        _agreement_section(facts),
        _quality_section(facts),
        _filters_section(facts),
        _reproducing_section(facts),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _files_section(facts: CardFacts) -> str:
    lines = [
        "## Files",
        "",
        "| split | path | rows | bytes | sha256 |",
        "|---|---|---:|---:|---|",
    ]
    for data_file in facts.files:
        lines.append(
            f"| {data_file.split} | `{data_file.path}` | {data_file.rows:,} | "
            f"{data_file.size_bytes:,} | `{data_file.sha256}` |"
        )
    note = (
        "`all` is the combined file (train and test rows in prompt order, the download "
        "without `?split`; the archive leaves it out); the `configs` above read the split "
        "files."
        if any(data_file.split == "all" for data_file in facts.files)
        else "The export is not split: every row is a training row."
    )
    return "\n".join([*lines, "", note])


def _columns_section(facts: CardFacts) -> str:
    lines = ["## Columns", "", "| column | type |", "|---|---|"]
    lines += [f"| `{name}` | {value_type} |" for name, value_type in facts.columns]
    text = "\n".join(lines)
    if facts.soft_labels:
        text += (
            "\n\n**Soft labels.** `chosen_votes`, `tie_votes` and `total_votes` count, among "
            "the prompt's rankings in this export that rank both responses (one per rater), "
            "those putting chosen above rejected, those tying them, and all of them. "
            "`chosen_votes / total_votes` is a soft label (count a tie as half: "
            "`(chosen_votes + tie_votes / 2) / total_votes`); filter on it to keep only "
            "pairs raters agree on."
        )
    return text


def _guidelines_section(facts: CardFacts) -> str:
    if not facts.guidelines.strip():
        return "### Guidelines\n\nThe project had no written guidelines."
    return (
        "### Guidelines\n\nRaters read these guidelines (the project's text, quoted "
        f"verbatim):\n\n{fenced(facts.guidelines)}"
    )


def _raters_section(facts: CardFacts) -> str:
    adaptive = (
        f", raised adaptively up to {facts.max_overlap} on prompts raters disagree on"
        if facts.max_overlap is not None and facts.max_overlap > facts.overlap
        else ""
    )
    spread = (
        f"{facts.fewest_rankings}"
        if facts.fewest_rankings == facts.most_rankings
        else f"{facts.fewest_rankings} to {facts.most_rankings}"
    )
    mean = facts.rankings / facts.prompts if facts.prompts else 0.0
    return "\n".join(
        [
            "### Raters and overlap",
            "",
            "- Crowd raters ranked all of a prompt's responses best to worst, shown in a "
            "random order per rater"
            + (", ties allowed." if facts.allow_ties else "; ties were not allowed."),
            f"- Overlap: each prompt collects {facts.overlap} rankings from distinct "
            f"raters{adaptive}.",
            f"- This export: {facts.rankings:,} rankings by {facts.raters:,} raters, "
            f"{spread} per prompt (mean {mean:.2f}).",
            "- Raters are pseudonymous: `rater_keys` are per-project keys, not account ids "
            "or names.",
        ]
    )


def _gold_section(facts: CardFacts) -> str:
    gold = "included in" if facts.include_gold else "left out of"
    return "\n".join(
        [
            "### Gold and repeats",
            "",
            f"- Gold rate {facts.gold_rate:.1%}: prompts with a reference ranking from the "
            f"lead, served like any other, measure rater accuracy; they are {gold} this export.",
            f"- Repeat rate {facts.repeat_rate:.1%}: a rater sees a prompt again, reshuffled, "
            "to measure self-consistency; repeats are never exported.",
        ]
    )


def _interval(figure: Figure) -> str:
    if figure.low is None or figure.high is None:
        return "—"
    return f"[{figure.low:.3f}, {figure.high:.3f}]"


def _agreement_section(facts: CardFacts) -> str:
    run = facts.agreement
    if run is None:
        return (
            "### Agreement\n\nNo agreement run had finished on this data when the export was made."
        )
    lines = [
        "### Agreement",
        "",
        f"Ranklab's agreement run over the project's rankings up to #{run.last_ranking_id} "
        f"({run.rankings:,} rankings of {run.prompts:,} prompts by {run.raters:,} raters; the "
        "lead's excluded raters left out). Intervals are 95% bootstrap intervals over prompts.",
        "",
        "| statistic | value | 95% interval | units |",
        "|---|---:|---|---|",
    ]
    for figure in run.figures:
        value = "—" if figure.value is None else f"{figure.value:.3f}"
        lines.append(
            f"| {figure.label} | {value} | {_interval(figure)} | "
            f"{figure.units:,} {figure.unit_name} |"
        )
    return "\n".join(lines)


def _raters(count: int) -> str:
    return f"{count} rater" if count == 1 else f"{count} raters"


def _quality_section(facts: CardFacts) -> str:
    excluded = "left out of" if facts.excluded_left_out else "kept in"
    flagged = "left out of" if facts.flagged_left_out else "kept in"
    reasons = "; ".join(f"{label}: {count}" for label, count in facts.flags)
    lines = ["### Raters flagged or excluded", ""]
    if facts.excluded_raters:
        lines.append(
            f"- Excluded by the lead: {_raters(facts.excluded_raters)}; their rankings are "
            f"{excluded} this export."
        )
    else:
        lines.append("- Excluded by the lead: none.")
    if facts.flagged_raters:
        lines.append(
            f"- With an open quality flag: {_raters(facts.flagged_raters)}"
            + (f" ({reasons})" if reasons else "")
            + f"; their rankings are {flagged} this export."
        )
    else:
        lines.append("- With an open quality flag: none.")
    return "\n".join(lines)


def _filters_section(facts: CardFacts) -> str:
    lines = [
        "### Filters and pair strategy",
        "",
        f"Pairs: {facts.strategy_label.lower()}. Every export parameter:",
        "",
        "| parameter | value |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {value} |" for name, value in facts.parameters]
    return "\n".join(lines)


def _reproducing_section(facts: CardFacts) -> str:
    return (
        "## Reproducing\n\n"
        f"The export read the rankings up to #{facts.last_ranking_id}. The same parameters "
        f"with `until_ranking_id` {facts.last_ranking_id} over the same data give "
        "byte-identical files (check them against the sha256 above) and this same card."
    )
