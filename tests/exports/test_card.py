"""The dataset card (README.md): Hugging Face metadata that hostile project text cannot break,
the annotation facts it reports, and the same card for the same data and parameters."""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest
import yaml
from markdown_it import MarkdownIt

from exports.card import (
    AgreementFacts,
    CardFacts,
    DataFile,
    Figure,
    render_card,
    size_category,
)
from exports.formats import FORMATS
from labeling.models import Membership
from rankings.models import AgreementRun, Flag
from rankings.runs import services as run_services
from tests.exports.rated import export

HOSTILE = [
    'quote " and backslash \\ and \\" together',
    "---\nlicense: mit\n---\n# Taken over",
    "line\nbreaks\r\nand\rreturns",
    "separators \u2028 \u2029 and NEL \x85 and BOM \ufeff",
    "controls \x00 \x07 \x1b \x7f \x9f",
    "yaml: [flow, {mapping: 1}] & anchor *alias ! tag | > % @ `",
    "'single' and \"double\" and # not a comment",
    "ü 漢字 🙂 \U0001f600 and nbsp\xa0here",
    "lone surrogate \ud800 here",
    "```\n~~~\n````` backticks\n```",
    "<script>alert(1)</script> <!-- comment --> [link](javascript:alert(1))",
    "   ",
    "",
]
FRONT_KEYS = {
    "license",
    "pretty_name",
    "annotations_creators",
    "task_categories",
    "size_categories",
    "tags",
    "configs",
}


def facts(**overrides) -> CardFacts:
    base = CardFacts(
        project_name="Helpfulness",
        guidelines="Prefer the **correct** answer.",
        format="trl",
        format_label="TRL preference (strings)",
        format_summary="TRL preference.",
        format_tags=("dpo", "trl"),
        strategy_label="All pairs of each ranking",
        container="jsonl",
        columns=(("prompt", "text"), ("chosen", "text"), ("rejected", "text")),
        parameters=(("format", "trl"), ("min_agreement", "0.0")),
        rows=1500,
        prompts=100,
        files=(
            DataFile("train", 1200, "a" * 64, 10_000, "jsonl"),
            DataFile("test", 300, "b" * 64, 2_500, "jsonl"),
            DataFile("all", 1500, "c" * 64, 12_500, "jsonl"),
        ),
        last_ranking_id=321,
        overlap=3,
        max_overlap=5,
        allow_ties=True,
        gold_rate=0.1,
        repeat_rate=0.05,
        include_gold=False,
        raters=7,
        rankings=300,
        fewest_rankings=2,
        most_rankings=5,
        excluded_raters=1,
        excluded_left_out=True,
        flagged_raters=2,
        flagged_left_out=False,
        flags=(("Much faster than the project", 2),),
        soft_labels=True,
        agreement=AgreementFacts(
            last_ranking_id=300,
            rankings=290,
            prompts=95,
            raters=7,
            figures=(Figure("Fleiss' kappa on pair labels", 0.4321, 0.39, 0.47, 600, "pairs"),),
        ),
    )
    return replace(base, **overrides)


def split_card(card: str) -> tuple[dict, str]:
    """The parsed front matter and the markdown after it, read the way the Hub reads them:
    the YAML between the first line `---` and the next one."""
    lines = card.split("\n")
    assert lines[0] == "---"
    end = lines.index("---", 1)
    return yaml.safe_load("\n".join(lines[1:end])), "\n".join(lines[end + 1 :])


def test_the_front_matter_has_the_hugging_face_fields():
    front, _ = split_card(render_card(facts()))

    assert set(front) == FRONT_KEYS
    assert front["license"] is None  # the lead's to fill in
    assert front["pretty_name"] == "Helpfulness"
    assert front["annotations_creators"] == ["crowdsourced"]
    assert front["task_categories"] == ["text-generation"]
    assert front["size_categories"] == ["1K<n<10K"]
    assert {"ranklab", "preference", "dpo", "trl", "soft-labels"} <= set(front["tags"])
    assert front["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train.jsonl"},
                {"split": "test", "path": "data/test.jsonl"},
            ],
        }
    ]


@pytest.mark.parametrize("spec", FORMATS, ids=lambda spec: spec.name)
def test_each_format_s_tags_reach_its_card(spec):
    front, _ = split_card(render_card(facts(format=spec.name, format_tags=spec.tags)))

    assert spec.tags and set(spec.tags) <= set(front["tags"])
    assert all(re.fullmatch(r"[a-z0-9-]+", tag) for tag in front["tags"])
    assert len(front["tags"]) == len(set(front["tags"]))


def test_an_unsplit_export_is_one_train_file():
    one = (DataFile("train", 10, "d" * 64, 100, "parquet"),)

    front, body = split_card(render_card(facts(files=one, rows=10, soft_labels=False)))

    assert front["configs"][0]["data_files"] == [{"split": "train", "path": "data/train.parquet"}]
    assert front["size_categories"] == ["n<1K"] and "soft-labels" not in front["tags"]
    assert "d" * 64 in body and "not split" in body


def headings(tokens) -> list[tuple[str, str]]:
    return [
        (token.tag, "".join(child.content for child in tokens[index + 1].children))
        for index, token in enumerate(tokens)
        if token.type == "heading_open"
    ]


PLAIN = split_card(render_card(facts()))[1]


def test_a_split_without_rows_is_listed_but_left_out_of_the_configs():
    files = (
        DataFile("train", 0, "e" * 64, 0, "jsonl.gz"),
        DataFile("test", 5, "f" * 64, 50, "jsonl.gz"),
        DataFile("all", 5, "f" * 64, 50, "jsonl.gz"),
    )

    front, body = split_card(render_card(facts(files=files)))

    assert front["configs"][0]["data_files"] == [{"split": "test", "path": "data/test.jsonl.gz"}]
    assert "| train | `data/train.jsonl.gz` | 0 |" in body


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_project_text_cannot_break_the_front_matter_or_the_body(text):
    guidelines = f"Rules:\n{text}\n```\n---\nlicense: mit"
    card = render_card(facts(project_name=text, guidelines=guidelines))

    card.encode("utf-8")  # always valid UTF-8
    front, body = split_card(card)
    assert set(front) == FRONT_KEYS
    assert front["pretty_name"] == text
    assert front["license"] is None
    # The body: our headings only, and the guidelines as one code block holding them verbatim.
    tokens = MarkdownIt("commonmark").parse(body)
    (title, *sections), plain = headings(tokens), headings(MarkdownIt("commonmark").parse(PLAIN))
    assert title[0] == "h1" and sections == plain[1:]
    shown = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    assert title[1] in (shown, "Ranklab export")
    [fence] = [token for token in tokens if token.type == "fence"]
    expected = guidelines.encode("utf-8", "replace").decode()
    expected = expected.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    assert fence.content == expected + "\n"
    assert not [token for token in tokens if token.type in ("html_block", "html_inline")]


def test_random_unicode_names_round_trip_through_the_yaml():
    rng = random.Random(5)
    for _ in range(300):
        codes = [rng.choice([rng.randint(0, 0x2FFF), rng.randint(0, 0x10FFFF)]) for _ in range(12)]
        name = "".join(map(chr, codes))

        front, _ = split_card(render_card(facts(project_name=name)))

        assert front["pretty_name"] == name


@pytest.mark.parametrize(
    ("rows", "category"),
    [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (99_999, "10K<n<100K"), (10**6, "1M<n<10M")],
)
def test_size_categories_follow_the_hub_buckets(rows, category):
    assert size_category(rows) == category


def test_the_body_reports_the_annotation_process():
    card = render_card(facts())

    for expected in [
        "## Annotation process",
        "Prefer the **correct** answer.",
        "collects 3 rankings from distinct raters, raised adaptively up to 5",
        "300 rankings by 7 raters, 2 to 5 per prompt (mean 3.00)",
        "Gold rate 10.0%",
        "Repeat rate 5.0%",
        "| Fleiss' kappa on pair labels | 0.432 | [0.390, 0.470] | 600 pairs |",
        "Excluded by the lead: 1 rater; their rankings are left out of this export.",
        "`(chosen_votes + tie_votes / 2) / total_votes`",
        "With an open quality flag: 2 raters (Much faster than the project: 2); their "
        "rankings are kept in this export.",
        "| `min_agreement` | 0.0 |",
        "`chosen_votes / total_votes`",
        "a" * 64,
    ]:
        assert expected in card, expected


# --- made by export jobs ----------------------------------------------------------------------


@pytest.mark.django_db
def test_two_exports_with_the_same_parameters_have_the_same_card(rated, engineer):
    params = {"test_fraction": 0.5, "seed": 3, "soft_labels": True}
    first = export(rated, engineer, format="trl", params=params)
    second = export(rated, engineer, format="trl", params=params)

    assert first.pk != second.pk and first.card and first.card == second.card
    _, body = split_card(first.card)
    for split in ("train", "test"):
        assert f"`data/{split}.jsonl` | {first.splits[split]['rows']:,} |" in body
        assert first.splits[split]["sha256"] in body
    assert first.sha256 in body  # the combined file
    assert f"rankings up to #{first.last_ranking_id}" in body
    other = export(rated, engineer, format="trl", params={**params, "seed": 4})
    assert other.card != first.card


@pytest.mark.django_db
def test_the_card_counts_raters_flags_and_exclusions_without_naming_anyone(
    rated, engineer, make_user, add_member, django_capture_on_commit_callbacks
):
    hidden = add_member(make_user("zelda-excluded"))
    Membership.objects.filter(project=rated, user=hidden).update(excluded=True)
    rater2 = Membership.objects.get(project=rated, user__username="rater2").user
    Flag.objects.create(project=rated, rater=rater2, code="TOO_FAST", status="open")
    rated.guidelines = "Prefer the correct answer; penalise made-up facts."
    rated.overlap, rated.gold_rate, rated.repeat_rate = 3, 0.2, 0.05
    rated.save()
    with django_capture_on_commit_callbacks(execute=True):
        run_services.agreement_run_request(project=rated, trigger="manual")
    run = AgreementRun.objects.get(project=rated)
    assert run.status == "done", run.error

    job = export(rated, engineer, format="trl", params={"exclude_flagged_raters": True})

    card = job.card
    assert "Prefer the correct answer; penalise made-up facts." in card
    assert "Gold rate 20.0%" in card and "Repeat rate 5.0%" in card
    assert "4 rankings by 2 raters, 2 per prompt" in card  # rater2's rankings left out
    assert "Excluded by the lead: 1 rater; their rankings are left out" in card
    assert "With an open quality flag: 1 rater (Much faster than the project: 1); their " in card
    kappa, (low, high) = run.metrics["kappa"], run.metrics["kappa_ci"]
    assert f"| Fleiss' kappa on pair labels | {kappa:.3f} | [{low:.3f}, {high:.3f}] |" in card
    assert f"rankings up to #{run.last_ranking_id}" in card
    for username in ("zelda-excluded", "rater1", "rater2", "rater3", "engineer"):
        assert username not in card


@pytest.mark.django_db
def test_an_agreement_run_newer_than_the_export_s_snapshot_is_not_reported(
    rated, engineer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run_services.agreement_run_request(project=rated, trigger="manual")
    run = AgreementRun.objects.get(project=rated)

    job = export(rated, engineer, params={"until_ranking_id": run.last_ranking_id - 1})

    assert "No agreement run had finished on this data" in job.card
