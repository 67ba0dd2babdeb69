"""Pure statistics over rankings: numpy arrays and dataclasses in, numbers out; no Django.

- ``tables``: the dense ranking table every statistic reads, pair labels, mid-ranks.
- ``agreement``: pairwise and leave-one-out agreement, per prompt and per rater.
- ``units``, ``bootstrap``, ``project``: the project-level statistics and their intervals.
- ``raters``: each rater's behaviour (gold, repeats, position, straight-lining, speed…).
- ``davidson``, ``consensus``: a consensus ranking per prompt.
- ``registry``: the rater statistics, declared once for storage, API, dashboard and flags.

Import direction inside the app: ``stats`` ← ``runs`` ← ``quality``.
"""
