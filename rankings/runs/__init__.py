"""Agreement runs: reading a project's rankings in bulk, the maths of a run (from
``rankings.stats``), storing its rows, and the job that does it on a worker.

- ``data`` (with ``portable`` and ``postgresql``, the two readers): the arrays a run reads.
- ``maths``: a run's numbers from those arrays; no database.
- ``storage``: the prompt rows (COPY on PostgreSQL) and the rater score rows.
- ``services``: request, compute and schedule runs (the ``core.jobs`` lifecycle).
- ``selectors``: run history and what is due; ``tasks``: the Celery entry points.
"""
