"""Task kinds where raters write: demonstrations, red teaming and the arena.

Each kind is its own Django app (`authoring.demonstrations`, `authoring.redteam`,
`authoring.arena`) that registers its handler in `labeling.task_kinds` when it loads; the
pieces they share (streaming a model's reply to the rater's page, `streaming`; the API's
submission answers and reply-stream view, `api`) live in this package.
Above `llm` (the endpoints they talk to) and below `exports` (which writes their data).
"""
