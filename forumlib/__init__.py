"""Pure libraries of the forum, with no I/O: what the services, the web front and an outside verifier
import alike.

* ``tlog``              — the public record's transparency log: RFC 9162 tree and proofs, RFC 8785
  leaves, C2SP signed notes and checkpoints.
* ``majority_judgment`` — merit profiles, majority grades and ranking of an online vote.
* ``ical``              — iCalendar (RFC 5545) files for sessions.
* ``markdown``          — Markdown rendered to sanitised HTML (decisions, minutes).
* ``minutes_doc``       — the minutes as citable blocks with stable anchors, their canonical JSON and hash,
  and the block-by-block difference between two versions.

Nothing here imports from ``shared`` or ``services``.
"""
