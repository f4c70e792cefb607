"""Headless Chromium (Debian's, never a downloaded build) for the browser journeys, launched once for them
all (this folder is a package so that it closes after them), and the secretariat account the journeys
sign in with when the secretariat is a means, not what they check."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from forum_ouvert.launcher import Stack
from tests.web.browser.test_registration_journey import create_secretariat

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="package")
def clerk_email(forum: Stack) -> str:
    """A secretariat account, made once with the CLI as an operator makes one (the registration journey makes
    its own: that is part of what it checks). Each journey signs it in in browsers of its own."""
    email = "greffe@journeys.forum-ouvert.example"
    create_secretariat(forum, email)
    return email
