"""Fixtures for the rater flow's tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def rater_client(client, rater):
    client.force_login(rater)
    return client
