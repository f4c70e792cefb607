"""Samples the resident memory (RSS, children included) and CPU time of the stack's processes.

A daemon thread reads /proc through psutil every `interval` seconds and keeps, per process name,
the peak RSS overall and per phase ("registrations", "raw", ...). CPU time is read on demand
(`cpu_seconds()`), so a phase's CPU use is the difference between two readings.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping

import psutil

MiB = 1024 * 1024


class _Tracked:
    def __init__(self, pid: int, with_children: bool = True) -> None:
        self.root = psutil.Process(pid)
        self.with_children = with_children
        self.children: list[psutil.Process] = []

    def processes(self) -> list[psutil.Process]:
        return [self.root, *self.children] if self.with_children else [self.root]

    def set_children(self, ppid_map: dict[int, int]) -> None:
        if not self.with_children:
            return
        kids: set[int] = set()
        frontier = {self.root.pid}
        while frontier:
            frontier = {pid for pid, ppid in ppid_map.items() if ppid in frontier} - kids
            kids |= frontier
        known = {p.pid: p for p in self.children}
        self.children = []
        for pid in sorted(kids):
            with contextlib.suppress(psutil.Error):
                self.children.append(known.get(pid) or psutil.Process(pid))


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _local_ports_to(port: int, inodes: set[str]) -> set[int]:
    """Local ports of the TCP connections to `port` whose socket inode is in `inodes` (Linux /proc)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh, None)
                for line in fh:
                    f = line.split()
                    if len(f) > 9 and int(f[2].rsplit(":", 1)[1], 16) == port and f[9] in inodes:
                        found.add(int(f[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return found


def postgres_backends(client_pids: set[int], port: int = 5432) -> list[psutil.Process]:
    """The PostgreSQL server processes serving connections opened by `client_pids` (a shared server
    also serves others: only these backends are this run's). Linux only; [] elsewhere."""
    inodes: set[str] = set()
    for pid in client_pids:
        inodes |= _socket_inodes(pid)
    ports = _local_ports_to(port, inodes) if inodes else set()
    if not ports:
        return []
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
        except psutil.Error:
            continue
        if cmd.startswith("postgres:") and any(f"({lp})" in cmd for lp in ports):
            found.append(p)
    return found


POSTGRES = "postgresql (backends)"


class ResourceSampler:
    def __init__(self, pids: Mapping[str, int], interval: float = 0.1, include_self: bool = True,
                 postgres_port: int | None = None) -> None:
        self.interval = interval
        self.postgres_port = postgres_port
        self._pg: dict[int, psutil.Process] = {}
        self._pg_cpu: dict[int, float] = {}  # last CPU seen per backend, kept after it exits
        self._pg_checked = 0.0
        self._children_checked = 0.0
        self._tracked: dict[str, _Tracked] = {}
        for name, pid in pids.items():
            try:
                self._tracked[name] = _Tracked(pid)
            except psutil.Error:
                pass
        if include_self:
            # the stack's processes are our children: count the client's own process only
            self._tracked["bench-client"] = _Tracked(os.getpid(), with_children=False)
        self.peak: dict[str, int] = {}
        self.phase_peak: dict[str, dict[str, int]] = {}
        self.samples = 0
        self._phase = "setup"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def phase(self, name: str) -> None:
        """From now on, peaks are also recorded under `name`."""
        with self._lock:
            self._phase = name
        self.sample()

    def __enter__(self) -> ResourceSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ reading
    def _refresh_children(self) -> None:
        """One scan of /proc for every tracked process's descendants (not every 100 ms: it is not free)."""
        self._children_checked = time.monotonic()
        ppid_map: dict[int, int] = {}
        for p in psutil.process_iter(["ppid"]):
            with contextlib.suppress(psutil.Error):
                ppid_map[p.pid] = p.info["ppid"]
        for t in self._tracked.values():
            t.set_children(ppid_map)

    def _rss(self, name: str) -> int | None:
        total, alive = 0, False
        for p in self._tracked[name].processes():
            try:
                total += p.memory_info().rss
                alive = True
            except psutil.Error:
                continue
        return total if alive else None

    def sample(self) -> None:
        if time.monotonic() - self._children_checked > 2.0:
            self._refresh_children()
        with self._lock:
            phase = self.phase_peak.setdefault(self._phase, {})
            for name in self._tracked:
                rss = self._rss(name)
                if rss is None:
                    continue
                if rss > self.peak.get(name, 0):
                    self.peak[name] = rss
                if rss > phase.get(name, 0):
                    phase[name] = rss
            self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
                if self.postgres_port and time.monotonic() - self._pg_checked > 2.0:
                    self._sample_postgres()
            except Exception:  # noqa: BLE001 - a sampler must never take the benchmark down
                pass

    def _sample_postgres(self) -> None:
        self._pg_checked = time.monotonic()
        pids = {t.root.pid for name, t in self._tracked.items() if name != "bench-client"}
        for p in postgres_backends(pids, self.postgres_port or 5432):
            self._pg.setdefault(p.pid, p)
        for pid, p in list(self._pg.items()):
            try:
                c = p.cpu_times()
                self._pg_cpu[pid] = max(self._pg_cpu.get(pid, 0.0), c.user + c.system)
            except psutil.Error:
                self._pg.pop(pid, None)

    def cpu_snapshot(self) -> dict[str, dict[int, float]]:
        """User+system CPU seconds consumed so far, per tracked name and pid (children included)."""
        out: dict[str, dict[int, float]] = {}
        for name, t in self._tracked.items():
            per: dict[int, float] = {}
            for p in t.processes():
                try:
                    c = p.cpu_times()
                    per[p.pid] = c.user + c.system
                except psutil.Error:
                    continue
            out[name] = per
        if self.postgres_port:
            with contextlib.suppress(Exception):
                self._sample_postgres()
            out[POSTGRES] = dict(self._pg_cpu)
        return out

    @staticmethod
    def cpu_delta(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
        """CPU seconds used between two snapshots; a process born in between counts from zero."""
        return {name: round(sum(max(0.0, cpu - before.get(name, {}).get(pid, 0.0)) for pid, cpu in per.items()), 2)
                for name, per in after.items()}

    @staticmethod
    def machine_cpu() -> tuple[float, float]:
        """(busy, total) CPU seconds of the whole machine so far, all cores."""
        t = psutil.cpu_times()
        total = sum(t)
        idle = t.idle + getattr(t, "iowait", 0.0)
        return total - idle, total

    def track(self, name: str, pid: int) -> None:
        """Sample one more process from now on (e.g. a second instance started mid-run)."""
        with self._lock:
            self._tracked[name] = _Tracked(pid)
        self._children_checked = 0.0

    def current_mib(self) -> dict[str, float]:
        """RSS (children included) of every tracked process right now."""
        with self._lock:
            names = list(self._tracked)
        out = {}
        for name in names:
            rss = self._rss(name)
            if rss is not None:
                out[name] = round(rss / MiB, 1)
        return out

    def names(self) -> list[str]:
        return list(self._tracked) + ([POSTGRES] if self.postgres_port else [])

    def peaks_mib(self, phase: str | None = None) -> dict[str, float]:
        with self._lock:
            src = self.peak if phase is None else self.phase_peak.get(phase, {})
            return {name: round(v / MiB, 1) for name, v in src.items()}
