"""Agreement runs: reading a project's rankings in bulk, the maths of a run (from
``rankings.stats``), storing its rows, and the job that does it on a worker.

- ``data`` (with ``portable`` and ``postgresql``, the two readers): the arrays a run reads,
  for the whole project or for one range of its prompts.
- ``streamed``: a run's numbers block by block of prompts (sums that add up, two passes);
  ``maths``: the same numbers with every ranking in memory (the tests' reference).
- ``parts``: a run in parts of prompt ranges, computed by the run's worker and any other
  (``payloads``: what a part computed, as bytes for its row).
- ``storage``: the prompt rows (COPY on PostgreSQL) and the rater score rows.
- ``services``: request, compute and schedule runs (the ``core.jobs`` lifecycle).
- ``selectors``: run history and what is due; ``tasks``: the Celery entry points.
"""
