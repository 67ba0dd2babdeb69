"""Every format in every container, loaded by the readers trainers use.

`datasets.load_dataset("json" | "parquet", …)` reads the files exactly as TRL's scripts do.
TRL itself needs torch, so the column checks its data utilities make are restated here from
its documentation (`trl.data_utils.is_conversational`, the DPO/Reward/KTO dataset formats).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest

from exports.formats import split_for_prompt
from tests.exports.rated import CONTAINERS, RECORDS, export, load

datasets = pytest.importorskip("datasets")
pytestmark = pytest.mark.django_db
PROMPT_KEYS = {"prompt", "chosen", "rejected", "completion", "messages"}


def is_conversational(example: dict) -> bool:
    """`trl.data_utils.is_conversational`, restated: a known key holding role/content dicts."""
    keys = [key for key in example if key in PROMPT_KEYS]
    if not keys:
        return False
    value = example[keys[0]]
    return (
        isinstance(value, list)
        and bool(value)
        and isinstance(value[0], dict)
        and {"role", "content"} <= set(value[0])
    )


@pytest.mark.parametrize("container", CONTAINERS)
def test_trl_standard_rows_load_as_prompt_chosen_rejected_strings(
    rated, engineer, export_folder, tmp_path, container
):
    job = export(rated, engineer, format="trl", container=container)

    data = load(job, export_folder, tmp_path)

    assert data.num_rows == job.rows == 2 * (3 + 3 + 2)
    assert data.column_names[:3] == ["prompt", "chosen", "rejected"]
    for name in ("prompt", "chosen", "rejected"):
        assert data.features[name].dtype == "string"
    assert not is_conversational(data[0])
    assert data[0]["prompt"] == "Name a prime number — any one."
    assert "User: Capital of France?" in data[data.num_rows - 1]["prompt"]
    assert data.features["margin"].dtype == "float64"
    assert data.features["rater_keys"].feature.dtype == "string"


@pytest.mark.parametrize("container", CONTAINERS)
def test_trl_conversational_rows_load_as_role_content_message_lists(
    rated, engineer, export_folder, tmp_path, container
):
    job = export(rated, engineer, format="trl-conversational", container=container)

    data = load(job, export_folder, tmp_path)

    row = data[data.num_rows - 1]
    assert is_conversational(row)
    assert row["prompt"] == RECORDS[1]["messages"]
    assert row["chosen"][0]["role"] == "assistant" and len(row["chosen"]) == 1
    assert all(is_conversational({"chosen": example}) for example in data["chosen"])


@pytest.mark.parametrize("container", CONTAINERS)
def test_trl_reward_rows_carry_a_float_margin(rated, engineer, export_folder, tmp_path, container):
    job = export(
        rated, engineer, format="trl-reward", container=container, params={"with_metadata": False}
    )

    data = load(job, export_folder, tmp_path)

    assert data.column_names == ["prompt", "chosen", "rejected", "margin"]
    assert data.features["margin"].dtype == "float64"
    assert set(data["margin"]) <= {1.0, 2.0}


@pytest.mark.parametrize("container", CONTAINERS)
def test_trl_unpaired_rows_have_prompt_completion_and_a_bool_label(
    rated, engineer, export_folder, tmp_path, container
):
    job = export(rated, engineer, format="trl-unpaired", container=container)

    data = load(job, export_folder, tmp_path)

    assert data.column_names[:3] == ["prompt", "completion", "label"]
    assert data.features["label"].dtype == "bool"
    assert data["label"].count(True) == data["label"].count(False) == data.num_rows // 2


@pytest.mark.parametrize("container", CONTAINERS)
def test_openai_rows_follow_the_preference_fine_tuning_layout(
    rated, engineer, export_folder, tmp_path, container
):
    job = export(
        rated, engineer, format="openai", container=container, params={"with_metadata": False}
    )

    data = load(job, export_folder, tmp_path)

    assert data.column_names == ["input", "preferred_output", "non_preferred_output"]
    row = data[data.num_rows - 1]
    assert row["input"]["messages"] == RECORDS[1]["messages"]
    for key in ("preferred_output", "non_preferred_output"):
        [message] = row[key]
        assert message["role"] == "assistant" and isinstance(message["content"], str)


@pytest.mark.parametrize("container", CONTAINERS)
def test_hh_rlhf_rows_are_transcripts_sharing_the_prompt(
    rated, engineer, export_folder, tmp_path, container
):
    job = export(
        rated, engineer, format="hh-rlhf", container=container, params={"with_metadata": False}
    )

    data = load(job, export_folder, tmp_path)

    assert data.column_names == ["chosen", "rejected"]
    for row in data:
        assert row["chosen"].startswith("\n\nHuman: ")
        # TRL's hh-rlhf script splits the prompt off at the last Assistant turn.
        cut = "\n\nAssistant: "
        chosen_prompt = row["chosen"][: row["chosen"].rindex(cut) + len(cut)]
        assert row["rejected"].startswith(chosen_prompt)
        assert chosen_prompt.endswith("\n\nAssistant: ")
        assert "System" not in chosen_prompt


@pytest.mark.parametrize("container", CONTAINERS)
def test_split_files_load_as_disjoint_train_and_test_sets(
    rated, engineer, export_folder, tmp_path, container
):
    prompt_ids = list(rated.prompts.values_list("id", flat=True))
    seed = next(  # one that puts the two prompts on different sides
        seed
        for seed in range(1000)
        if len({split_for_prompt(prompt_id, seed, 0.5) for prompt_id in prompt_ids}) == 2
    )
    job = export(
        rated,
        engineer,
        format="trl",
        container=container,
        params={"test_fraction": 0.5, "seed": seed},
    )

    train = load(job, export_folder, tmp_path, "train")
    test = load(job, export_folder, tmp_path, "test")

    assert train.num_rows == job.splits["train"]["rows"]
    assert test.num_rows == job.splits["test"]["rows"]
    assert train.num_rows + test.num_rows == job.rows
    assert not set(train["prompt_id"]) & set(test["prompt_id"])


@pytest.mark.parametrize("container", CONTAINERS)
def test_ultrafeedback_rows_load_as_conversations_with_float_scores(
    rated, engineer, export_folder, tmp_path, container
):
    job = export(
        rated,
        engineer,
        format="ultrafeedback",
        container=container,
        params={"with_metadata": False},
    )

    data = load(job, export_folder, tmp_path)

    assert data.column_names == [
        "prompt",
        "prompt_id",
        "chosen",
        "rejected",
        "score_chosen",
        "score_rejected",
    ]
    assert data.features["prompt"].dtype == "string"
    assert data.features["score_chosen"].dtype == data.features["score_rejected"].dtype == "float64"
    first = data[0]
    assert first["prompt"] == "Name a prime number — any one."
    assert [message["role"] for message in first["chosen"]] == ["user", "assistant"]
    assert first["chosen"][0]["content"] == first["prompt"]
    last = data[data.num_rows - 1]
    assert last["chosen"][:-1] == RECORDS[1]["messages"] == last["rejected"][:-1]
    assert all(is_conversational({"chosen": example}) for example in data["chosen"])
    # Per prompt, responses 0 and 2 each win 4.5 of their 6 comparisons (1 + 9 * 0.75) and
    # response 1 none of them (1.0).
    assert set(data["score_chosen"]) | set(data["score_rejected"]) == {7.75, 1.0}
    assert set(data["prompt_id"]) == set(rated.prompts.values_list("id", flat=True))
