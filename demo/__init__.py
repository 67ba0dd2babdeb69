"""The demo: two projects already worked on by a simulated crowd, built through the same
services raters, leads and engineers use (``manage.py demo`` / ``ranklab demo``)."""
