"""Demonstrations: raters write the ideal reply (or rank, then rewrite the best one),
reviewed by a second rater."""
