"""What the reliability model adds to an agreement run: 1M rankings (K=4) in memory.

Builds a synthetic crowd's rankings as the arrays a run computes on (careful raters with
noise, half-random, first-shown and longest-first raters, varied lengths, shown orders),
then times, best of ``--repeat``:

- the model's parts: reading the pair labels, the EM fit, and the per-rater summaries
  (interval and sequential test), one after the other, alone; and
- the run's maths (agreement, model, consensus, rater statistics, as ``agreement_maths``)
  with the model and with a stand-in that fits nothing: what the model adds to a run,
  where the fit overlaps the agreement statistics in a second thread.

    .venv/bin/python bench/reliability.py [--rankings 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import django_setup, machine

K = 4
RATERS = 2000
OVERLAP = 3


def build(total: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """(AgreementData, behaviour per rater): every prompt ranked by OVERLAP raters."""
    from rankings.runs.data import AgreementData
    from rankings.stats.tables import RankingContext, RankingTable

    rng = np.random.default_rng(seed)
    prompts = total // OVERLAP
    n = prompts * OVERLAP
    prompt_index = np.repeat(np.arange(prompts), OVERLAP)
    rater_index = rng.integers(0, RATERS, size=n)
    kind = rng.choice(4, size=RATERS, p=[0.85, 0.05, 0.05, 0.05])  # careful, half, first, long
    length = rng.lognormal(6.0, 0.5, size=(prompts, K))
    utility = 0.25 * (np.log(length) - 6.0) / 0.5 + rng.normal(size=(prompts, K))
    shown = np.argsort(rng.random((n, K)), axis=1)
    perceived = utility[prompt_index] + rng.normal(0, 0.3, size=(n, K))
    shortcut = rng.random(n) < np.array([0.0, 0.5, 0.7, 0.7])[kind[rater_index]]
    rater_kind = kind[rater_index]
    random_scores = rng.random((n, K))
    shown_scores = -np.argsort(shown, axis=1).astype(np.float64)  # earlier shown, higher
    score = np.where((shortcut & (rater_kind == 1))[:, None], random_scores, perceived)
    score = np.where((shortcut & (rater_kind == 2))[:, None], shown_scores, score)
    score = np.where((shortcut & (rater_kind == 3))[:, None], length[prompt_index], score)
    ranks = (np.argsort(np.argsort(-score, axis=1), axis=1) + 1).astype(np.float64)
    table = RankingTable(
        prompt_index=prompt_index, rater_index=rater_index, ranks=ranks, n_raters=RATERS
    )
    context = RankingContext(
        is_repeat=np.zeros(n, dtype=bool),
        shown_slots=shown.astype(np.int8),
        seconds=rng.lognormal(3.5, 0.4, size=n),
        gold_ranks=np.full((prompts, K), np.nan),
        response_length=np.round(length),
    )
    data = AgreementData(
        table=table,
        context=context,
        rater_user_ids=list(range(RATERS)),
        prompt_ids=np.arange(prompts, dtype=np.int64),
        response_ids=np.arange(prompts * K, dtype=np.int64).reshape(prompts, K),
        ranking_ids=np.arange(n, dtype=np.int64),
    )
    return data, kind


def fit_nothing(data):  # type: ignore[no-untyped-def]
    """The stand-in: no labels, so no fit (the run falls back to agreement weights)."""
    from rankings.stats import reliability

    labels = reliability.PairLabels(
        unit=np.zeros(0, dtype=np.int64),
        rater=np.zeros(0, dtype=np.int64),
        task=np.zeros(0, dtype=np.int64),
        label=np.zeros(0, dtype=np.int8),
        first_shown=np.zeros(0, dtype=np.int8),
        longer=np.zeros(0, dtype=np.int8),
        n_raters=data.table.n_raters,
        tasks=np.zeros(data.table.n_raters, dtype=np.int64),
    )
    return labels, reliability.fit_reliability(labels, max_iterations=1)


def best_of(repeat: int, work):  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rankings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    django_setup("sqlite:////tmp/bench_reliability.sqlite3", migrate=False)
    from rankings.runs import maths
    from rankings.stats import reliability, sequential

    data, kind = build(args.rankings)
    print(machine())
    print(f"{data.table.n_rankings:,} rankings, {RATERS:,} raters, K={K}")

    labels_time, labels = best_of(
        args.repeat, lambda: reliability.pair_labels(data.table, data.context)
    )
    fit_time, fit = best_of(args.repeat, lambda: reliability.fit_reliability(labels))
    # Beside it, plain EM: stopped as before acceleration (a thousandth, 50 passes), and to the
    # same stopping rule as the accelerated fit.
    old_time, old = best_of(
        args.repeat,
        lambda: reliability.fit_reliability(
            labels, max_iterations=50, tolerance=1e-3, accelerate=False
        ),
    )
    plain_time, plain = best_of(
        1, lambda: reliability.fit_reliability(labels, max_iterations=2000, accelerate=False)
    )
    summary_time, rows = best_of(args.repeat, lambda: sequential.rater_reliability(labels, fit))
    with_model, _ = best_of(args.repeat, lambda: maths.agreement_maths(data))
    real_fit = maths._reliability_fit
    maths._reliability_fit = fit_nothing
    try:
        without_model, _ = best_of(args.repeat, lambda: maths.agreement_maths(data))
    finally:
        maths._reliability_fit = real_fit
    print(f"pair labels      {labels_time:6.2f} s  ({labels.n_labels:,} decided labels)")
    print(f"EM fit           {fit_time:6.2f} s  ({fit.iterations} passes, accelerated)")
    for name, seconds, other in (
        ("plain EM, 1e-3", old_time, old),
        ("plain EM, same", plain_time, plain),
    ):
        gap = float(np.abs(other.weights - fit.weights).max())
        print(
            f"  {name}   {seconds:6.2f} s  ({other.iterations} passes, "
            f"converged {other.converged}; farthest weight from the accelerated fit's {gap:.1e})"
        )
    print(f"rater summaries  {summary_time:6.2f} s")
    print(f"model alone      {labels_time + fit_time + summary_time:6.2f} s")
    print(f"run maths        {with_model:6.2f} s with the model, {without_model:.2f} s without")
    print(f"added to a run   {with_model - without_model:6.2f} s")
    competence = np.array([row.competence or np.nan for row in rows])
    for index, name in enumerate(("careful", "half random", "first shown 70%", "longest 70%")):
        print(f"  {name:16} median competence {np.nanmedian(competence[kind == index]):.2f}")


if __name__ == "__main__":
    main()
