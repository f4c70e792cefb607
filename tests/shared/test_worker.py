"""The one loop behind every background job (shared.worker.Worker): it runs the step again at once
while the step finds work, then waits for a wake-up or the idle delay, waits `pace` after a step that
did work, and survives a failing step by backing off and trying again."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from shared.worker import Worker


class Steps:
    """A step whose results are scripted: an int is returned, an exception raised; 0 once exhausted.
    `on_step`, if set, runs inside each step (e.g. to wake the worker while it works)."""

    def __init__(self, *results: int | Exception, on_step: Callable[[], None] | None = None) -> None:
        self.results = list(results)
        self.times: list[float] = []
        self.on_step = on_step

    async def __call__(self) -> int:
        self.times.append(time.monotonic())
        if self.on_step:
            self.on_step()
        result = self.results.pop(0) if self.results else 0
        if isinstance(result, Exception):
            raise result
        return result

    @property
    def calls(self) -> int:
        return len(self.times)


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def workers():  # noqa: ANN201 - stops every worker a test started, even when it fails
    started: list[Worker] = []

    def start(step: Steps, idle: float = 60.0, pace: float = 0.0) -> Worker:
        worker = Worker("test-job", step, idle=lambda: idle, pace=lambda: pace)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.stop()


async def test_runs_again_at_once_while_it_finds_work_then_waits(workers) -> None:  # noqa: ANN001
    step = Steps(3, 2, 0)
    worker = workers(step)
    await _until(lambda: step.calls == 3)
    assert worker.handled == 5
    assert step.times[2] - step.times[0] < 0.5  # no idle wait between steps that found work
    await asyncio.sleep(0.3)
    assert step.calls == 3  # nothing found: it waits (idle is 60 s)


async def test_a_wake_runs_a_step_now(workers) -> None:  # noqa: ANN001
    step = Steps()
    worker = workers(step)
    await _until(lambda: step.calls == 1)
    await asyncio.sleep(0.2)
    assert step.calls == 1
    woken = time.monotonic()
    worker.wake()
    await _until(lambda: step.calls == 2)
    assert step.times[1] - woken < 0.5
    await asyncio.sleep(0.2)
    assert step.calls == 2  # one wake, one step


async def test_a_wake_during_a_step_is_not_lost(workers) -> None:  # noqa: ANN001
    """Work committed while a step runs (after its query) must be picked up by the next step, even
    though this one found nothing."""
    holder: list[Worker] = []
    step = Steps(on_step=lambda: holder[0].wake() if len(step.times) == 1 else None)
    holder.append(workers(step))
    await _until(lambda: step.calls == 2, timeout=2)
    await asyncio.sleep(0.2)
    assert step.calls == 2


async def test_without_a_wake_it_sweeps_every_idle_seconds(workers) -> None:  # noqa: ANN001
    step = Steps()
    workers(step, idle=0.1)
    await _until(lambda: step.calls >= 4, timeout=3)
    gaps = [b - a for a, b in zip(step.times, step.times[1:])]
    assert all(g >= 0.09 for g in gaps), gaps


async def test_pace_spaces_steps_even_when_work_remains(workers) -> None:  # noqa: ANN001
    step = Steps(*([1] * 100))
    workers(step, pace=0.1)
    await asyncio.sleep(0.45)
    assert 2 <= step.calls <= 5, step.calls  # at most one step per 0.1 s, and it keeps going
    gaps = [b - a for a, b in zip(step.times, step.times[1:])]
    assert all(g >= 0.09 for g in gaps), gaps


async def test_pace_does_not_delay_a_wake_once_the_job_has_been_idle(workers) -> None:  # noqa: ANN001
    step = Steps(1, 0)
    worker = workers(step, pace=0.5)
    await _until(lambda: step.calls == 2, timeout=2)  # the work, then (0.5 s later) an empty step
    await asyncio.sleep(0.1)
    step.results = [1]
    woken = time.monotonic()
    worker.wake()
    await _until(lambda: step.calls == 3)
    assert step.times[2] - woken < 0.2  # the rate limit counts from the last step that did work


async def test_a_failing_step_backs_off_and_the_job_keeps_running(workers) -> None:  # noqa: ANN001
    step = Steps(RuntimeError("database down"), ConnectionError("broker down"), 2, 0)
    worker = workers(step)
    await _until(lambda: step.calls == 4, timeout=5)
    first_retry, second_retry = step.times[1] - step.times[0], step.times[2] - step.times[1]
    assert first_retry >= 0.45  # not a spin
    assert second_retry >= 0.95 and second_retry > first_retry  # longer after each failure in a row
    assert worker.handled == 2
    assert worker._task is not None and not worker._task.done()
    worker.wake()  # still alive, and answering wake-ups
    await _until(lambda: step.calls == 5)
    step.results = [RuntimeError("again")]  # a success reset the delay: back to the first one
    worker.wake()
    await _until(lambda: step.calls == 7, timeout=5)
    assert 0.45 <= step.times[6] - step.times[5] < 0.95


async def test_stop_ends_the_loop_even_during_a_back_off(workers) -> None:  # noqa: ANN001
    step = Steps(RuntimeError("down"))
    worker = workers(step)
    await _until(lambda: step.calls == 1)
    started = time.monotonic()
    await worker.stop()
    assert time.monotonic() - started < 0.4
    assert worker._task is None
