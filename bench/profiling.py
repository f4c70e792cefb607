"""Optional CPU profiles of chosen processes for a measured phase: py-spy record (--profile).

py-spy is not a dependency of the project (`pip install py-spy`; it needs ptrace permission on the
processes). In `raw` format (collapsed stacks) `summaries()` gives, per process, bench.profile_summary's
two short lists: CPU by package of the innermost frame, and inclusive CPU under the project's functions.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path


def find_py_spy(wanted: str) -> str:
    found = shutil.which(wanted) or (wanted if Path(wanted).exists() else None)
    if not found:
        here = Path(sys.executable).parent / "py-spy"
        found = str(here) if here.exists() else None
    if not found:
        raise SystemExit(f"py-spy not found ({wanted}); pip install py-spy, or pass its path")
    return found


class Profilers:
    """py-spy record on chosen processes, from `start` to `stop`; several phases may follow each other."""

    def __init__(self, binary: str | None, out_dir: Path, fmt_: str, stamp: str, idle: bool = False) -> None:
        self.binary = binary
        self.idle = idle
        self.out_dir = out_dir
        self.fmt = fmt_
        self.stamp = stamp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.outputs: dict[str, str] = {}

    def start(self, pids: dict[str, int], max_seconds: float, tag: str = "") -> None:
        if not self.binary:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ext = {"flamegraph": "svg", "speedscope": "json", "raw": "txt"}[self.fmt]
        for name, pid in pids.items():
            key = f"{tag}-{name}" if tag else name
            out = self.out_dir / f"profile-{self.stamp}-{key.replace(' ', '_')}.{ext}"
            self.procs[key] = subprocess.Popen(
                [self.binary, "record", "--pid", str(pid), "--rate", "100", "--format", self.fmt,
                 "--duration", str(int(max_seconds)), "--output", str(out), "--nonblocking",
                 *(["--idle", "--threads"] if self.idle else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.outputs[key] = str(out)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for name, p in self.procs.items():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.returncode not in (0, None, -signal.SIGINT) and p.stderr:
                print(f"py-spy on {name} exited {p.returncode}: {p.stderr.read()[:300]!r}", file=sys.stderr)
        self.procs = {}

    def summaries(self, top: int = 12) -> dict[str, str]:
        """bench.profile_summary of every raw profile written (other formats: nothing to summarise)."""
        from bench.profile_summary import summarise

        out = {}
        for name, path in self.outputs.items():
            if self.fmt == "raw" and Path(path).exists():
                out[name] = summarise(Path(path), top)
        return out
