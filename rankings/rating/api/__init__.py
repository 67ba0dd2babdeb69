"""The rater's REST API: next task, submit, skip, undo and renew."""
