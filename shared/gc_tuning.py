"""The garbage collector, tuned for a long-running service.

A service's process holds a few hundred thousand objects for its whole life (modules, the SQLAlchemy
mappers, pydantic's validators, the templates), and every full collection walked them all again; young
collections ran every 700 allocations, a few per request. Measured in the RSVP rush, the web front spent
about a quarter of its CPU in the collector. So, once a process has started:

- what it built to start is moved out of the collector's sight (`gc.freeze`): it is never garbage;
- young collections run every `YOUNG_THRESHOLD` allocations (older ones as before, relative to them):
  the garbage of a request is collected in fewer, larger passes. Memory stays bounded: at most that many
  objects wait for a collection.
"""
from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def settle_after_start() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
