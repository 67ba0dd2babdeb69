"""Django's PostgreSQL backend whose connection check costs no round trip (`base`)."""
