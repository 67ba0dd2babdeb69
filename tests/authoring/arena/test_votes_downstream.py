"""Arena votes downstream: the model leaderboard and preference exports with the context."""

from __future__ import annotations

import pytest

from authoring.arena.models import Battle, Turn
from authoring.arena.services import battles, turns
from exports.models import ExportJob
from rankings.leaderboard.selectors import project_leaderboard
from tests.exports.rated import export, load


@pytest.fixture
def export_folder(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    return tmp_path / "exports"


def _played_turn(battle: Battle, rater, content: str, choice: str, strength=None) -> Turn:
    turn = turns.turn_create(battle_id=battle.pk, rater=rater, content=content)
    for side in ("a", "b"):
        events = turns.turn_reply_events(
            battle_id=battle.pk, number=turn.number, side=side, rater=rater
        )
        assert list(events)[-1][0] == "done"
    turns.turn_vote(
        battle_id=battle.pk, number=turn.number, rater=rater, choice=choice, strength=strength
    )
    return Turn.objects.get(pk=turn.pk)


def _winner_side(battle: Battle, winner: str) -> str:
    return "a" if battle.model_a == winner else "b"


def test_the_leaderboard_counts_arena_votes_and_ties(arena, arena_rater):
    wins = {"model-0": 0, "model-1": 0}
    for index in range(6):
        battle = battles.battle_start(project=arena, rater=arena_rater)
        winner = "model-0" if index < 5 else "model-1"
        choice = _winner_side(battle, winner)
        _played_turn(battle, arena_rater, f"q{index}", choice)
        wins[winner] += 1
    battle = battles.battle_start(project=arena, rater=arena_rater)
    _played_turn(battle, arena_rater, "tied", "both_bad")
    board = project_leaderboard(project=arena)
    standings = {model.name: model for model in board.models}
    assert [model.name for model in board.models] == ["model-0", "model-1"]
    assert standings["model-0"].wins == 5 and standings["model-0"].losses == 1
    assert standings["model-0"].ties == 1 and standings["model-1"].ties == 1
    assert board.n_rankings == 7


def test_votes_not_counted_stay_out_of_the_leaderboard(arena, arena_rater):
    battle = battles.battle_start(project=arena, rater=arena_rater)
    _played_turn(battle, arena_rater, "q1", _winner_side(battle, "model-0"))
    battles.battle_reveal(battle_id=battle.pk, rater=arena_rater)
    battle = battles.battle_start(project=arena, rater=arena_rater)
    _played_turn(battle, arena_rater, "q2", _winner_side(battle, "model-0"))
    turn = turns.turn_create(battle_id=battle.pk, rater=arena_rater, content="q3")
    battles.battle_reveal(battle_id=battle.pk, rater=arena_rater)
    for side in ("a", "b"):
        list(turns.turn_reply_events(battle_id=battle.pk, number=2, side=side, rater=arena_rater))
    turns.turn_vote(
        battle_id=battle.pk, number=turn.number, rater=arena_rater,
        choice=_winner_side(battle, "model-1"),
    )  # fmt: skip
    board = project_leaderboard(project=arena)
    standings = {model.name: model for model in board.models}
    assert standings["model-1"].wins == 0 and standings["model-0"].wins == 2


def test_conversational_pairs_carry_the_shared_multi_turn_context(
    arena, arena_rater, lead, export_folder, tmp_path
):
    battle = battles.battle_start(project=arena, rater=arena_rater)
    first = _played_turn(battle, arena_rater, "What is a tide?", "a", 3)
    second = _played_turn(battle, arena_rater, "And a spring tide?", "b", 1)
    job = export(arena, lead, format="trl-conversational", container="jsonl")
    assert job.rows == 2
    rows = sorted(load(job, export_folder, tmp_path), key=lambda row: len(row["prompt"]))
    assert rows[0]["prompt"] == [{"role": "user", "content": "What is a tide?"}]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": first.response_a.text}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": first.response_b.text}]
    assert rows[1]["prompt"] == [
        {"role": "user", "content": "What is a tide?"},
        {"role": "assistant", "content": first.response_a.text},  # the preferred reply
        {"role": "user", "content": "And a spring tide?"},
    ]
    assert rows[1]["chosen"] == [{"role": "assistant", "content": second.response_b.text}]
    assert rows[1]["rejected"] == [{"role": "assistant", "content": second.response_a.text}]
    assert ExportJob.objects.get().status == "done"


def test_ties_and_both_bad_are_left_out_of_pairs_by_default(
    arena, arena_rater, lead, export_folder, tmp_path
):
    battle = battles.battle_start(project=arena, rater=arena_rater)
    _played_turn(battle, arena_rater, "q1", "tie")
    battle = battles.battle_start(project=arena, rater=arena_rater)
    _played_turn(battle, arena_rater, "q2", "both_bad")
    battle = battles.battle_start(project=arena, rater=arena_rater)
    _played_turn(battle, arena_rater, "q3", "a")
    job = export(arena, lead, format="trl-conversational", container="parquet")
    assert job.rows == 1
    rows = load(job, export_folder, tmp_path)
    assert rows[0]["prompt"] == [{"role": "user", "content": "q3"}]
