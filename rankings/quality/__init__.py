"""Acting on agreement runs and showing them to the lead.

- ``thresholds``, ``flags``: the pure flag rules and a project's settings for them.
- ``findings``: what a finished run changes (flags, auto-pause, adaptive overlap).
- ``actions``: the lead's actions on flags and raters.
- ``selectors``: rater rows, flags and hard prompts for the dashboard and the API.
- ``dashboard``, ``charts``, ``views``: the quality page.
"""
