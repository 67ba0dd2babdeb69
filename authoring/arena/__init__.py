"""The arena: the rater's own prompt, two anonymous live models side by side, a vote per turn."""
