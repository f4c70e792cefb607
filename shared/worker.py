"""One loop for the service's "claim, work, mark" jobs: the outbox relay, the mail sender, the
checkpoint signer, and the periodic sweeps (vote closer, session reminders).

A job is a `step` that does one batch of work and returns how many items it handled. The worker runs
it again at once while it finds work, sleeps until `wake()` (a commit that created work) or `idle`
seconds when it finds none, waits at least `pace` seconds after a step that did work before the next
one (a rate limit, e.g. one signed checkpoint per interval: an idle job still answers a wake at once),
and backs off after a failure (the error is logged, the step retried), so a database or broker outage neither kills the job
nor spins it.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from shared.logging import get_logger

log = get_logger(__name__)

MAX_BACKOFF_S = 30.0


class Worker:
    def __init__(self, name: str, step: Callable[[], Awaitable[int]], *, idle: Callable[[], float],
                 pace: Callable[[], float] = lambda: 0.0) -> None:
        self.name = name
        self.step = step
        self.idle = idle  # read at each wait, so a test may change the setting while it runs
        self.pace = pace
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.handled = 0

    def wake(self) -> None:
        """New work was committed: run a step now rather than at the end of the idle wait."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run(self) -> None:
        # The task's own context: every line the job writes, libraries' included, names it.
        structlog.contextvars.bind_contextvars(job=self.name)
        failures = 0
        last_work = float("-inf")
        while True:
            if (rest := last_work + self.pace() - time.monotonic()) > 0:
                await asyncio.sleep(rest)
            self._wake.clear()  # before the step: a wake during the step means more work for the next
            try:
                done = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep the job alive; the step is retried
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # A driver turned our cancellation into its own error: stop, or shutdown hangs.
                    raise asyncio.CancelledError from exc
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), MAX_BACKOFF_S)
                log.warning("job step failed, will retry", retry_in=delay,
                            error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.handled += done
            if done:
                last_work = time.monotonic()
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.idle())
            except TimeoutError:
                pass
