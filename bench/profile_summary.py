"""Summarise a py-spy profile in `raw` (collapsed stacks) format: where a service spends its CPU.

    python -m bench.profile_summary bench/results/profile-<stamp>-registry.txt [--top 25]

Prints the share of samples by the package of the innermost frame (self time: sqlalchemy,
psycopg, pydantic, faststream…) and the inclusive share of the project's own functions and of a
few library entry points (how much of the CPU is spent under them).
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
PROJECT = ("services/", "shared/", "forumlib/", "forum_ouvert/", "bench/")
# innermost frames that are waits, not work (py-spy's own idle detection misses some threads)
IDLE_LEAVES = ("select (selectors.py", "poll (selectors.py", "_run_once (asyncio/base_events.py",
               "wait (threading.py", "_worker (concurrent/futures/thread.py", "get (queue.py",
               "_connection_worker_thread (aiosqlite/core.py:59)")


def _where(file: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", "/lib/python3.12/", "/work/main/"):
        if marker in file:
            return file.split(marker, 1)[1]
    for p in PROJECT:
        if p in file:
            return p + file.split(p, 1)[1]
    return file


def summarise(path: Path, top: int = 25) -> str:
    total = idle = no_python = 0
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip() or " " not in line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f.strip()]
        total += n
        if not frames:  # a thread caught outside Python code (native call, GIL wait)
            no_python += n
            continue
        leaf = frames[-1] if frames else ""
        if any(x in leaf for x in IDLE_LEAVES):
            idle += n
            continue
        m = FRAME.match(leaf)
        where = _where(m.group("file")) if m else leaf
        by_package[where.split("/")[0].removesuffix(".py")] += n
        seen: set[str] = set()
        for f in frames:
            m = FRAME.match(f)
            if not m:
                continue
            where = _where(m.group("file"))
            if not where.startswith(PROJECT):
                continue
            key = f"{m.group('func')} ({where})"
            if key not in seen:
                inclusive[key] += n
                seen.add(key)
    busy = max(1, total - idle - no_python)
    out = [f"{path.name}: {total} samples: {idle} idle (waiting in select/locks), {no_python} without a Python "
           f"frame, {busy} in Python code (the percentages below are of these)"]
    out.append("self time by package of the innermost frame:")
    out += [f"  {n * 100 / busy:5.1f}%  {pkg}" for pkg, n in by_package.most_common(top)]
    out.append("inclusive time under the project's functions:")
    skip = ("<module>", "main (forum_ouvert/cli.py", "serve (forum_ouvert/cli.py", "main (bench/floor_services.py",
            "serve_web (bench/floor_services.py")
    out += [f"  {n * 100 / busy:5.1f}%  {k}" for k, n in inclusive.most_common(top + len(skip))
            if not k.startswith(skip)][:top]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile_summary")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    for f in args.files:
        print(summarise(f, args.top))
        print()


if __name__ == "__main__":
    main()
