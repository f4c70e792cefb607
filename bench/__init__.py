"""Benchmarks of the forum ouvert. One command: `bash bench/run.sh` (see bench/README.md).

Benchmarks print figures; they never assert timings (the machines they run on are shared).
"""
