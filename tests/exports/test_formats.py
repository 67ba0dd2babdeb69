"""Format writers, canonical JSONL output (plain and gzip) and the seeded train/test split.

Every format comes from the registry; each is rendered as dict rows (the reference), as
canonical JSON Lines bytes and as Arrow tables, and the three are held to each other.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
from dataclasses import replace
from typing import IO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exports.formats import (
    ALL,
    FORMAT_NAMES,
    ArrowBatchBuilder,
    ExportFiles,
    JsonlEncoder,
    JsonlWriter,
    ParquetWriter,
    encode_row,
    format_spec,
    parquet_schema,
    read_first_rows,
    rows_for_pairs,
    split_for_prompt,
)
from exports.pairs import (
    Pair,
    PromptData,
    RankingData,
    ResponseData,
    build_pairs,
    response_scores,
)
from tests.exports.reference import (
    encode_pairs,
    rows_for_pair,
    write_jsonl,
    write_jsonl_gz,
    write_rows,
)

METADATA_KEYS = [
    "prompt_id",
    "prompt_external_id",
    "chosen_id",
    "rejected_id",
    "chosen_model",
    "rejected_model",
    "margin",
    "agreement",
    "n_raters",
    "rater_keys",
    "group_id",
    "split",
]

RESPONSES = {
    11: ResponseData(11, "r-a", "Rayleigh scattering — shorter wavelengths scatter more.", "gpt-x"),
    12: ResponseData(12, "r-b", "Because it reflects the ocean.", "llama-y"),
}


SCORES = {11: 7.75, 12: 3.25}


def make_prompt(messages: list[dict[str, str]]) -> PromptData:
    return PromptData(
        prompt_id=3, external_id="ext-3", messages=messages, responses=RESPONSES, scores=SCORES
    )


SINGLE_TURN = make_prompt([{"role": "user", "content": "Why is the sky blue?"}])
MULTI_TURN = make_prompt(
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]
)
PAIR = Pair(
    prompt_id=3,
    chosen_id=11,
    rejected_id=12,
    margin=2.0,
    agreement=0.75,
    n_raters=4,
    rater_keys=("0f3a9c1d2b4e5f60",),
)


def rows_without_metadata(fmt: str, prompt: PromptData) -> list[dict]:
    return rows_for_pair(fmt, PAIR, prompt, "train", with_metadata=False)


# --- formats ------------------------------------------------------------------------------


def test_formats_registry_has_every_export_format() -> None:
    assert set(FORMAT_NAMES) == {
        "trl",
        "trl-conversational",
        "trl-reward",
        "trl-unpaired",
        "openai",
        "hh-rlhf",
        "ultrafeedback",
    }


def test_trl_standard_row_is_prompt_chosen_rejected_strings() -> None:
    assert rows_without_metadata("trl", SINGLE_TURN) == [
        {
            "prompt": "Why is the sky blue?",
            "chosen": "Rayleigh scattering — shorter wavelengths scatter more.",
            "rejected": "Because it reflects the ocean.",
        }
    ]


def test_trl_standard_renders_multi_turn_prompt_as_role_prefixed_turns() -> None:
    [row] = rows_without_metadata("trl", MULTI_TURN)

    assert row["prompt"] == (
        "System: You are terse.\n\nUser: Hi.\n\nAssistant: Hello.\n\nUser: Why is the sky blue?"
    )


def test_trl_conversational_row_uses_message_lists() -> None:
    [row] = rows_without_metadata("trl-conversational", MULTI_TURN)

    assert list(row) == ["prompt", "chosen", "rejected"]
    assert row["prompt"] == MULTI_TURN.messages
    assert row["chosen"] == [
        {"role": "assistant", "content": "Rayleigh scattering — shorter wavelengths scatter more."}
    ]
    assert row["rejected"] == [{"role": "assistant", "content": "Because it reflects the ocean."}]


def test_conversational_messages_keep_only_role_and_content_and_are_copies() -> None:
    prompt = make_prompt([{"role": "user", "content": "Hi.", "name": "alice"}])

    [row] = rows_without_metadata("trl-conversational", prompt)
    row["prompt"][0]["content"] = "changed"

    assert prompt.messages == [{"role": "user", "content": "Hi.", "name": "alice"}]


def test_trl_reward_row_adds_margin() -> None:
    [row] = rows_without_metadata("trl-reward", SINGLE_TURN)

    assert row == {
        "prompt": "Why is the sky blue?",
        "chosen": "Rayleigh scattering — shorter wavelengths scatter more.",
        "rejected": "Because it reflects the ocean.",
        "margin": 2.0,
    }


def test_trl_unpaired_turns_one_pair_into_a_desirable_and_an_undesirable_row() -> None:
    rows = rows_for_pair("trl-unpaired", PAIR, SINGLE_TURN, "test")

    assert [(row["prompt"], row["completion"], row["label"]) for row in rows] == [
        ("Why is the sky blue?", "Rayleigh scattering — shorter wavelengths scatter more.", True),
        ("Why is the sky blue?", "Because it reflects the ocean.", False),
    ]
    assert [list(row)[:3] for row in rows] == [["prompt", "completion", "label"]] * 2
    assert all(row["chosen_id"] == 11 and row["split"] == "test" for row in rows)


def test_openai_row_follows_preference_fine_tuning_layout() -> None:
    [row] = rows_without_metadata("openai", MULTI_TURN)

    assert row == {
        "input": {"messages": MULTI_TURN.messages},
        "preferred_output": [
            {
                "role": "assistant",
                "content": "Rayleigh scattering — shorter wavelengths scatter more.",
            }
        ],
        "non_preferred_output": [
            {"role": "assistant", "content": "Because it reflects the ocean."}
        ],
    }


def test_hh_rlhf_row_is_human_assistant_transcripts() -> None:
    [row] = rows_without_metadata("hh-rlhf", SINGLE_TURN)

    assert row == {
        "chosen": "\n\nHuman: Why is the sky blue?\n\nAssistant: "
        "Rayleigh scattering — shorter wavelengths scatter more.",
        "rejected": "\n\nHuman: Why is the sky blue?\n\nAssistant: Because it reflects the ocean.",
    }


def test_hh_rlhf_folds_system_message_into_first_human_turn() -> None:
    [row] = rows_without_metadata("hh-rlhf", MULTI_TURN)

    shared = "\n\nHuman: You are terse.\n\nHi.\n\nAssistant: Hello.\n\nHuman: Why is the sky blue?"
    assert row["chosen"] == f"{shared}\n\nAssistant: {RESPONSES[11].text}"
    assert row["rejected"] == f"{shared}\n\nAssistant: {RESPONSES[12].text}"
    assert "System" not in row["chosen"]


def test_hh_rlhf_keeps_a_trailing_system_message_as_a_human_turn() -> None:
    prompt = make_prompt(
        [{"role": "user", "content": "Hi."}, {"role": "system", "content": "Be kind."}]
    )

    [row] = rows_without_metadata("hh-rlhf", prompt)

    assert row["rejected"] == (
        "\n\nHuman: Hi.\n\nHuman: Be kind.\n\nAssistant: Because it reflects the ocean."
    )


def test_ultrafeedback_row_has_whole_conversations_and_scores() -> None:
    [row] = rows_without_metadata("ultrafeedback", MULTI_TURN)

    assert list(row) == [
        "prompt",
        "prompt_id",
        "chosen",
        "rejected",
        "score_chosen",
        "score_rejected",
    ]
    assert row["prompt"] == (
        "System: You are terse.\n\nUser: Hi.\n\nAssistant: Hello.\n\nUser: Why is the sky blue?"
    )
    assert row["prompt_id"] == 3
    assert row["chosen"] == [
        *MULTI_TURN.messages,
        {"role": "assistant", "content": RESPONSES[11].text},
    ]
    assert row["rejected"] == [
        *MULTI_TURN.messages,
        {"role": "assistant", "content": RESPONSES[12].text},
    ]
    assert (row["score_chosen"], row["score_rejected"]) == (7.75, 3.25)


def test_ultrafeedback_single_turn_is_a_user_then_an_assistant_message() -> None:
    [row] = rows_without_metadata("ultrafeedback", SINGLE_TURN)

    assert row["prompt"] == "Why is the sky blue?"
    assert row["chosen"] == [
        {"role": "user", "content": "Why is the sky blue?"},
        {"role": "assistant", "content": RESPONSES[11].text},
    ]


def test_ultrafeedback_needs_the_scores_of_the_responses() -> None:
    unscored = PromptData(3, "ext-3", SINGLE_TURN.messages, RESPONSES)

    with pytest.raises(ValueError, match="scores"):
        rows_for_pair("ultrafeedback", PAIR, unscored, "train")


def test_ultrafeedback_keeps_one_prompt_id_column_with_metadata_on() -> None:
    [row] = rows_for_pair("ultrafeedback", PAIR, SINGLE_TURN, "train")

    assert list(row).count("prompt_id") == 1 and list(row)[1] == "prompt_id"
    assert parquet_schema("ultrafeedback").names.count("prompt_id") == 1


@pytest.mark.parametrize("fmt", sorted(FORMAT_NAMES))
def test_every_format_carries_metadata_columns_after_its_own(fmt: str) -> None:
    for row in rows_for_pair(fmt, PAIR, MULTI_TURN, "train"):
        own = rows_without_metadata(fmt, MULTI_TURN)[0]
        assert list(row)[: len(own)] == list(own)
        assert {key: row[key] for key in METADATA_KEYS} == {
            "prompt_id": 3,
            "prompt_external_id": "ext-3",
            "chosen_id": 11,
            "rejected_id": 12,
            "chosen_model": "gpt-x",
            "rejected_model": "llama-y",
            "margin": 2.0,
            "agreement": 0.75,
            "n_raters": 4,
            "rater_keys": ["0f3a9c1d2b4e5f60"],
            "group_id": 3,
            "split": "train",
        }


@pytest.mark.parametrize("fmt", sorted(FORMAT_NAMES))
def test_without_metadata_no_metadata_column_is_added(fmt: str) -> None:
    own = {column.name for column in format_spec(fmt).columns}  # e.g. trl-reward's margin
    for row in rows_without_metadata(fmt, SINGLE_TURN):
        assert not set(row) & (set(METADATA_KEYS) - own)


@pytest.mark.parametrize("fmt", sorted(FORMAT_NAMES))
def test_rows_for_pairs_matches_rows_for_each_pair_in_order(fmt: str) -> None:
    rankings = [
        RankingData(1, 3, "k1", [[11], [12]]),
        RankingData(2, 3, "k2", [[12], [11]]),
    ]
    pairs = build_pairs(MULTI_TURN, rankings, "all_pairs")

    batch = rows_for_pairs(fmt, pairs, MULTI_TURN, "test")

    assert batch == [row for pair in pairs for row in rows_for_pair(fmt, pair, MULTI_TURN, "test")]
    assert len(batch) == len(pairs) * (2 if fmt == "trl-unpaired" else 1)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        rows_for_pair("csv", PAIR, SINGLE_TURN, "train")
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        rows_for_pairs("csv", [], SINGLE_TURN, "train")


def test_rows_from_built_pairs_carry_pair_values() -> None:
    prompt = make_prompt([{"role": "user", "content": "Q"}])
    rankings = [
        RankingData(1, 3, "k1", [[11], [12]]),
        RankingData(2, 3, "k2", [[12], [11]]),
    ]
    [_first, second] = build_pairs(prompt, rankings, "all_pairs")

    [row] = rows_for_pair("trl", second, prompt, "train")

    assert (row["chosen"], row["rejected"]) == (RESPONSES[12].text, RESPONSES[11].text)
    assert (row["agreement"], row["n_raters"], row["rater_keys"]) == (0.5, 2, ["k2"])


# --- JSONL --------------------------------------------------------------------------------


def sample_rows(count: int = 500) -> list[dict]:
    rows = []
    for index in range(count):
        pair = Pair(3, 11, 12, float(index % 3), index / count, 3, (f"key{index}",))
        split = split_for_prompt(index, seed=1, test_fraction=0.2)
        rows.extend(rows_for_pair("trl-conversational", pair, MULTI_TURN, split))
    return rows


def test_jsonl_lines_are_canonical_compact_utf8_json() -> None:
    rows = sample_rows(3)
    buffer = io.BytesIO()

    result = write_jsonl(rows, buffer)

    expected = "".join(
        json.dumps(row, ensure_ascii=False, separators=(",", ":"), sort_keys=False) + "\n"
        for row in rows
    ).encode()
    assert buffer.getvalue() == expected
    assert "—".encode() in buffer.getvalue()
    assert encode_row(rows[0]) == expected.splitlines(keepends=True)[0]
    assert [json.loads(line) for line in buffer.getvalue().splitlines()] == rows
    assert result == (3, hashlib.sha256(expected).hexdigest(), len(expected))


def test_jsonl_result_reports_rows_sha256_and_size() -> None:
    buffer = io.BytesIO()

    rows, sha256, size_bytes = write_jsonl(sample_rows(10), buffer)

    assert rows == 10
    assert sha256 == hashlib.sha256(buffer.getvalue()).hexdigest()
    assert size_bytes == len(buffer.getvalue())


def test_two_writes_of_same_rows_are_byte_identical() -> None:
    first, second = io.BytesIO(), io.BytesIO()

    first_result = write_jsonl(sample_rows(), first)
    second_result = write_jsonl(iter(sample_rows()), second)

    assert first.getvalue() == second.getvalue()
    assert first_result == second_result


def test_gzip_output_is_byte_identical_run_to_run_and_decompresses_to_jsonl() -> None:
    plain, first, second = io.BytesIO(), io.BytesIO(), io.BytesIO()
    write_jsonl(sample_rows(), plain)

    first_result = write_jsonl_gz(sample_rows(), first)
    second_result = write_jsonl_gz(sample_rows(), second)

    assert first.getvalue() == second.getvalue()
    assert first_result == second_result
    assert first_result.sha256 == hashlib.sha256(first.getvalue()).hexdigest()
    assert first_result.size_bytes == len(first.getvalue())
    assert first_result.rows == 500
    assert gzip.decompress(first.getvalue()) == plain.getvalue()
    assert first.getvalue()[4:8] == b"\x00\x00\x00\x00"  # header mtime is zero


def test_jsonl_writer_streams_batches_like_a_single_write() -> None:
    rows = sample_rows()
    whole, batched = io.BytesIO(), io.BytesIO()
    write_jsonl_gz(rows, whole)

    writer = JsonlWriter(batched, compress=True)
    for start in range(0, len(rows), 37):
        write_rows(writer, rows[start : start + 37])
    write_rows(writer, [])
    result = writer.close()

    assert batched.getvalue() == whole.getvalue()
    assert result.rows == len(rows)


def test_writing_no_rows_gives_an_empty_file() -> None:
    buffer = io.BytesIO()

    assert write_jsonl([], buffer) == (0, hashlib.sha256(b"").hexdigest(), 0)
    assert buffer.getvalue() == b""


# --- split --------------------------------------------------------------------------------


def test_split_is_deterministic_for_a_seed() -> None:
    first = [split_for_prompt(prompt_id, 42, 0.1) for prompt_id in range(1000)]
    second = [split_for_prompt(prompt_id, 42, 0.1) for prompt_id in range(1000)]

    assert first == second
    assert set(first) == {"train", "test"}


def test_split_never_puts_one_prompt_on_both_sides() -> None:
    prompt = make_prompt([{"role": "user", "content": "Q"}])
    rankings = [
        RankingData(ranking_id, 3, f"k{ranking_id}", [[11], [12]]) for ranking_id in range(5)
    ]
    splits = {
        row["split"]
        for pair in build_pairs(prompt, rankings, "all_pairs")
        for row in rows_for_pair("trl", pair, prompt, split_for_prompt(pair.prompt_id, 7, 0.5))
    }

    assert len(splits) == 1


@pytest.mark.parametrize("test_fraction", [0.05, 0.1, 0.25, 0.5])
def test_split_hits_roughly_the_test_fraction_over_10k_prompts(test_fraction: float) -> None:
    tested = sum(
        split_for_prompt(prompt_id, 2024, test_fraction) == "test" for prompt_id in range(10_000)
    )

    # binomial sd is at most 50 for n=10k; allow about 4 sd
    assert abs(tested / 10_000 - test_fraction) < 0.02


def test_split_changes_with_seed() -> None:
    seed_one = [split_for_prompt(prompt_id, 1, 0.5) for prompt_id in range(200)]
    seed_two = [split_for_prompt(prompt_id, 2, 0.5) for prompt_id in range(200)]

    assert seed_one != seed_two


def test_split_extremes_put_everything_on_one_side() -> None:
    assert {split_for_prompt(prompt_id, 0, 0.0) for prompt_id in range(500)} == {"train"}
    assert {split_for_prompt(prompt_id, 0, 1.0) for prompt_id in range(500)} == {"test"}


def test_split_refuses_fraction_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        split_for_prompt(1, 0, 1.5)


# --- the fast JSONL encoder and the Arrow builder ------------------------------------------

AWKWARD_TEXTS = [
    "plain",
    'quotes " and \\ backslashes',
    "newlines\nand\ttabs\r",
    "control \x01\x1f and DEL \x7f",
    "unicode — ü 漢字 🙂 and \u2028 line separator",
    "per cent % signs: %b %s %% %(name)s",
    "",
]


def random_prompts(count: int, seed: int = 3) -> list[tuple[PromptData, list[Pair]]]:
    """Prompts of 2 to 6 responses with awkward texts, ranked by 1 to 4 raters with ties."""
    rng = random.Random(seed)
    prompts = []
    for index in range(count):
        k = rng.randint(2, 6)
        base = 1000 * (index + 1)
        responses = {
            base + slot: ResponseData(
                base + slot, f"r{slot}", rng.choice(AWKWARD_TEXTS) + f" {slot}", f"model-{slot % 3}"
            )
            for slot in range(k)
        }
        messages = [{"role": "user", "content": rng.choice(AWKWARD_TEXTS)}]
        if rng.random() < 0.5:
            messages = [
                {"role": "system", "content": "Be terse."},
                *messages,
                {"role": "assistant", "content": "Sure."},
                {"role": "user", "content": "Again?"},
            ]
        prompt = PromptData(index + 1, rng.choice(["", f"ext-{index}", "ü"]), messages, responses)
        rankings = []
        for rater in range(rng.randint(1, 4)):
            ids = list(responses)
            rng.shuffle(ids)
            groups: list[list[int]] = []
            for response_id in ids:
                if groups and rng.random() < 0.3:
                    groups[-1].append(response_id)
                else:
                    groups.append([response_id])
            strength = rng.choice([None, None, 0, 1, 3])
            rankings.append(RankingData(rater + 1, index + 1, f"key-{rater}", groups, strength))
        scored = replace(prompt, scores=response_scores(prompt, rankings))
        prompts.append((scored, build_pairs(prompt, rankings, "all_pairs", include_ties=True)))
    return prompts


SHAPES = [(True, False), (False, False), (True, True), (False, True)]
"""(with_metadata, soft_labels): every way a row can be shaped."""


@pytest.mark.parametrize(("with_metadata", "soft_labels"), SHAPES)
@pytest.mark.parametrize("fmt", sorted(FORMAT_NAMES))
def test_fast_encoder_gives_the_canonical_bytes_of_the_dict_rows(
    fmt: str, with_metadata: bool, soft_labels: bool
) -> None:
    for prompt, pairs in random_prompts(60):
        rows = rows_for_pairs(fmt, pairs, prompt, "test", with_metadata, soft_labels)

        data, count = encode_pairs(fmt, pairs, prompt, "test", with_metadata, soft_labels)

        assert data == b"".join(encode_row(row) for row in rows)
        assert count == len(rows)
        assert [orjson.loads(line) for line in data.splitlines()] == rows


@pytest.mark.parametrize("fmt", sorted(FORMAT_NAMES))
def test_a_batch_encodes_like_its_prompts_one_by_one(fmt: str) -> None:
    prompts = random_prompts(40)
    batch = [
        (prompt, pairs, split_for_prompt(prompt.prompt_id, 3, 0.4)) for prompt, pairs in prompts
    ]

    encoded = JsonlEncoder(format_spec(fmt), True).encode(batch)

    assert [b"".join(parts) for parts in encoded] == [
        b"".join(encode_row(row) for row in rows_for_pairs(fmt, pairs, prompt, split))
        for prompt, pairs, split in batch
    ]


def test_a_batch_whose_prompts_share_response_ids_still_encodes_each_prompt_right() -> None:
    pairs = [PAIR]
    batch = [(SINGLE_TURN, pairs, "train"), (MULTI_TURN, pairs, "test")]

    encoded = JsonlEncoder(format_spec("trl"), True).encode(batch)

    assert [b"".join(parts) for parts in encoded] == [
        b"".join(encode_row(row) for row in rows_for_pairs("trl", pairs, prompt, split))
        for prompt, pairs, split in batch
    ]


def test_canonical_form_matches_python_json_for_export_rows() -> None:
    for prompt, pairs in random_prompts(30):
        for row in rows_for_pairs("openai", pairs, prompt, "train"):
            expected = json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
            assert encode_row(row) == expected.encode()


def test_fast_encoder_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        encode_pairs("csv", [PAIR], SINGLE_TURN, "train")


@pytest.mark.parametrize(("with_metadata", "soft_labels"), SHAPES)
@pytest.mark.parametrize("fmt", sorted(FORMAT_NAMES))
def test_arrow_builder_equals_the_dict_rows_under_the_fixed_schema(
    fmt: str, with_metadata: bool, soft_labels: bool
) -> None:
    builder = ArrowBatchBuilder(fmt, with_metadata, soft_labels)
    rows = []
    for prompt, pairs in random_prompts(40):
        split = split_for_prompt(prompt.prompt_id, 1, 0.3)
        builder.add(prompt, pairs, split)
        rows.extend(rows_for_pairs(fmt, pairs, prompt, split, with_metadata, soft_labels))

    table = builder.table()

    assert table.schema == parquet_schema(fmt, with_metadata, soft_labels)
    assert table.equals(pa.Table.from_pylist(rows, schema=table.schema))
    assert table.to_pylist() == rows
    assert builder.table().num_rows == 0  # the builder starts afresh


def test_parquet_schema_keeps_one_margin_column_for_trl_reward() -> None:
    names = parquet_schema("trl-reward").names

    assert names.count("margin") == 1
    assert names[:4] == ["prompt", "chosen", "rejected", "margin"]


def parquet_bytes(fmt: str, batches: list[list[tuple[PromptData, list[Pair]]]]) -> bytes:
    buffer = io.BytesIO()
    writer = ParquetWriter(buffer, parquet_schema(fmt))
    for batch in batches:
        builder = ArrowBatchBuilder(fmt, True)
        for prompt, pairs in batch:
            builder.add(prompt, pairs, "train")
        writer.write_table(builder.table())
    result = writer.close()
    assert result.sha256 == hashlib.sha256(buffer.getvalue()).hexdigest()
    assert result.size_bytes == len(buffer.getvalue())
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", sorted(FORMAT_NAMES))
def test_parquet_output_is_byte_identical_run_to_run(fmt: str) -> None:
    prompts = random_prompts(50)
    batches = [prompts[:20], prompts[20:]]

    first, second = parquet_bytes(fmt, batches), parquet_bytes(fmt, batches)

    assert first == second
    table = pq.read_table(io.BytesIO(first))
    assert table.num_rows == sum(
        len(rows_for_pairs(fmt, pairs, prompt, "train")) for prompt, pairs in prompts
    )
    assert pq.ParquetFile(io.BytesIO(first)).metadata.num_row_groups == 2


@pytest.mark.parametrize("container", ["jsonl", "jsonl.gz", "parquet"])
def test_export_files_route_each_prompt_to_its_split_and_the_combined_file(
    container: str,
) -> None:
    buffers = {part: io.BytesIO() for part in (ALL, "train", "test")}
    handles: dict[str, IO[bytes]] = dict(buffers)
    files = ExportFiles(fmt="trl", container=container, with_metadata=True, files=handles)
    prompts = random_prompts(40)
    for index, (prompt, pairs) in enumerate(prompts):
        files.add(prompt, pairs, split_for_prompt(prompt.prompt_id, 5, 0.3))
        if index % 7 == 0:
            files.flush()

    results = files.close()

    def read(part: str) -> list[dict]:
        return read_first_rows(io.BytesIO(buffers[part].getvalue()), container, 10**6)

    everything, train, test = read(ALL), read("train"), read("test")
    assert {row["split"] for row in train} == {"train"}
    assert {row["split"] for row in test} == {"test"}
    assert not {row["prompt_id"] for row in train} & {row["prompt_id"] for row in test}
    assert [row for row in everything if row["split"] == "train"] == train
    assert len(everything) == len(train) + len(test) == results[ALL].rows
    assert (results["train"].rows, results["test"].rows) == (len(train), len(test))
    assert files.rows_by_split == {"train": len(train), "test": len(test)}
    for part, result in results.items():
        assert result.sha256 == hashlib.sha256(buffers[part].getvalue()).hexdigest()


@pytest.mark.parametrize("container", ["jsonl", "jsonl.gz", "parquet"])
def test_read_first_rows_reads_only_what_is_asked(container: str) -> None:
    buffer = io.BytesIO()
    files = ExportFiles(
        fmt="hh-rlhf", container=container, with_metadata=False, files={ALL: buffer}
    )
    for prompt, pairs in random_prompts(10):
        files.add(prompt, pairs, "train")
    files.close()

    rows = read_first_rows(io.BytesIO(buffer.getvalue()), container, 3)

    assert len(rows) == 3 and set(rows[0]) == {"chosen", "rejected"}
    assert read_first_rows(io.BytesIO(buffer.getvalue()), container, 0) == []


def test_export_files_refuse_unknown_containers_and_need_the_combined_file() -> None:
    with pytest.raises(ValueError, match="container"):
        ExportFiles(fmt="trl", container="csv", with_metadata=True, files={ALL: io.BytesIO()})
    with pytest.raises(ValueError, match="combined"):
        ExportFiles(fmt="trl", container="jsonl", with_metadata=True, files={})
