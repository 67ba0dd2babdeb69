"""Rankings made and judged: submission, agreement runs, rater scores, the quality pages."""
