"""The lead's prompt browser and prompt page: what needs rankings data to show a prompt
(agreement, rankings, consensus, flags). The changes it offers (gold, reopen, archive,
response edits) are labeling services; this package only reads and calls them."""
