"""Headless Chromium (Debian's, never a downloaded build) for the browser journeys, launched once for them
all (this folder is a package so that it closes after them), and the secretariat account the journeys
sign in with when the secretariat is a means, not what they check; and one forum filled with the demo
content, shared by the modules that read the demo (the page sweep, the counts and times)."""
from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from forum_ouvert.demo import SECRETARIAT_EMAIL, fill
from forum_ouvert.launcher import Stack
from tests.support import database_urls, drop_schemas
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


def in_thread(work: Any, *args: Any) -> Any:
    """Run a coroutine (or a function that runs its own event loop, like `fill`) in a thread of its own:
    Playwright's sync API keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        if asyncio.iscoroutine(work):
            return pool.submit(asyncio.run, work).result()
        return pool.submit(work, *args).result()


@dataclass
class DemoForum:
    stack: Stack
    banner: str       # what `fill` printed: the demo's own counts
    secretariat: str  # the demo secretariat's member id


DEMO_ENV = {"FORUM_RATE_LIMIT_PER_MINUTE": "100000", "FORUM_OUTBOX_POLL_INTERVAL": "0.5",
            "FORUM_REMINDER_INTERVAL": "1", "FORUM_LINK_MAIL_LIMIT": "100000"}


@pytest.fixture(scope="package")
def demo_forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoForum]:
    """A forum of its own (its own nats-server; the demo needs an empty forum) filled with the demo content
    once. The stack lives in a thread of its own until the package is done: it runs event loops of its own
    (this thread has Playwright's)."""
    from forum_ouvert.cli import _create_secretariat

    data = tmp_path_factory.mktemp("demo-forum")
    urls = database_urls(data, f"demo_{uuid.uuid4().hex[:6]}")
    stack = Stack(data, database_urls=urls, log_dir=data / "logs", env=DEMO_ENV)
    started, done, failed = threading.Event(), threading.Event(), []

    def keeper() -> None:
        try:
            stack.start()
        except BaseException as exc:  # noqa: BLE001 - handed to the fixture
            failed.append(exc)
        started.set()
        done.wait()
        stack.stop()

    thread = threading.Thread(target=keeper, name="demo-stack")
    thread.start()
    try:
        started.wait()
        if failed:
            raise failed[0]
        banner = in_thread(fill, stack)
        # The demo's secretariat account exists already: this returns it (and its id).
        sec = in_thread(_create_secretariat(SECRETARIAT_EMAIL, "", urls["registry"])).member_id
        yield DemoForum(stack, banner, sec)
    finally:
        done.set()
        thread.join()
        drop_schemas(urls)
