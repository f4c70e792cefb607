"""Is an RSVP rush correct? Checked from what the load generator saw and what the database holds.

- overbooking: more confirmed rows than seats (must be 0); and seats left empty while someone waits;
- every answered request has its row, and no row exists without a request;
- waitlist tickets are distinct;
- arrival order: when request A had its answer before request B was sent, A reached the seat lock
  first, so A cannot be behind B: if B got a seat A has one too, and if both wait, A's ticket is the
  smaller. (Requests in flight at the same time may reach the lock in any order: the generator cannot
  know theirs.) Checked for every such pair, in O(n log n);
- the waitlist position each member was told (when the answer carries it) is their ticket's rank.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_rush(*, members: Sequence[str], answered: Sequence[bool], sent_at: Sequence[float],
               answered_at: Sequence[float], rows: Sequence[tuple[str, str, int | None]], seats: int,
               told_positions: Sequence[int | None] | None = None) -> dict[str, Any]:
    """`members[i]` sent request i; `answered[i]` whether it got a success answer."""
    by_member = {m: (state, seq) for m, state, seq in rows}
    confirmed = sum(1 for _, s, _ in rows if s == "confirmed")
    waiting = sorted((seq, m) for m, s, seq in rows if s == "waitlisted")
    tickets = [seq for seq, _ in waiting]
    rank = {m: k + 1 for k, (_, m) in enumerate(waiting)}
    sent_members = set(members)
    missing = sum(1 for i, m in enumerate(members) if answered[i] and m not in by_member)
    unexpected = sum(1 for m in by_member if m not in sent_members)

    # order: key(A) must not exceed key(B) whenever A was answered before B was sent
    def key(m: str) -> float:
        state, seq = by_member.get(m, ("", None))
        return -1.0 if state == "confirmed" else float(seq) if seq is not None else float("nan")

    idx = [i for i, m in enumerate(members) if answered[i] and m in by_member]
    by_answer = sorted(idx, key=lambda i: answered_at[i])
    by_send = sorted(idx, key=lambda i: sent_at[i])
    violations, examples, constrained = 0, [], 0
    j, best, best_i = 0, float("-inf"), -1
    for b in by_send:
        while j < len(by_answer) and answered_at[by_answer[j]] < sent_at[b]:
            k = key(members[by_answer[j]])
            if k > best:
                best, best_i = k, by_answer[j]
            j += 1
        kb = key(members[b])
        constrained += j > 0
        if best > kb or (best == kb and kb >= 0):  # behind someone who came later, or the same ticket
            violations += 1
            if len(examples) < 5:
                examples.append(f"request #{best_i} (answered first) holds {best:g}, request #{b} (sent after) "
                                f"holds {kb:g}")
    told_wrong = 0
    if told_positions is not None:
        for i, m in enumerate(members):
            pos = told_positions[i]
            if answered[i] and pos is not None and rank.get(m) != pos:
                told_wrong += 1
    return {
        "confirmed": confirmed, "waitlisted": len(waiting), "overbooked": max(0, confirmed - seats),
        "seats_left_while_waiting": max(0, min(seats - confirmed, len(waiting))),
        "answered_without_row": missing, "rows_without_request": unexpected,
        "duplicate_tickets": len(tickets) - len(set(tickets)),
        "order_violations": violations, "order_examples": examples,
        "told_position_wrong": told_wrong if told_positions is not None else None,
        "order_checked_requests": len(idx), "order_constrained_requests": constrained,
        "ok": (confirmed <= seats and not missing and not unexpected and len(tickets) == len(set(tickets))
               and not violations and not told_wrong and min(seats - confirmed, len(waiting)) <= 0),
    }
