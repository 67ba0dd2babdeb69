"""Shared foundations every app may import and that import no app: base templates, static
files, health checks and the ``ranklab`` command."""
