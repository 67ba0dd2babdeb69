"""The model leaderboard: which model wins, with intervals (page, API, bulk reads)."""
