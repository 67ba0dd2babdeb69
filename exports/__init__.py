"""Export jobs: pair building, format writers, stored files and downloads."""
