"""The registry's answers to `CheckSession`, kept a few seconds by the web front.

Every page of a signed-in member needs to know that the session is still live and who the member is now
(status, role, name). Asking the registry on every page was a fifth of the CPU of the RSVP rush. The
answer is kept for `FORUM_SESSION_CHECK_SECONDS` (10 s), and forgotten at once when:
- the registry says the member changed (`MembersChanged`, a core NATS notice sent after the commit and
  before the reply to the command: a web front hears it before it hears that reply);
- this web front signs the member out (here or everywhere);
- the connection to NATS was lost (a notice may have been missed meanwhile): everything is forgotten.
So sign-out, erasure, a decision on the account and a profile change show on the next page, as before; a
notice lost some other way delays them by the time limit at most. A session too old is signed out by
the front door before any check (`Visitor.forget_if_older_than`).
"""
from __future__ import annotations

import time
from collections.abc import Iterable

from nats.aio.msg import Msg
from pydantic import ValidationError

from shared.contracts.registry import MembersChanged, MemberView
from shared.logging import get_logger

log = get_logger(__name__)


class SessionChecks:
    def __init__(self, seconds: float, most: int = 50_000) -> None:
        self.seconds = seconds
        self.most = most  # sessions remembered at most (the oldest answers go first)
        self._answers: dict[tuple[str, str], tuple[float, MemberView]] = {}  # (member, session) -> (when, view)
        self._sessions: dict[str, set[str]] = {}  # member -> sessions remembered

    def get(self, member_id: str, session: str) -> MemberView | None:
        found = self._answers.get((member_id, session))
        if found is None:
            return None
        if time.monotonic() - found[0] >= self.seconds:
            self._drop(member_id, session)
            return None
        return found[1]

    def put(self, member_id: str, session: str, view: MemberView) -> None:
        if self.seconds <= 0:
            return
        self._drop(member_id, session)
        while len(self._answers) >= self.most:
            self._drop(*next(iter(self._answers)))
        self._answers[(member_id, session)] = (time.monotonic(), view)
        self._sessions.setdefault(member_id, set()).add(session)

    def forget(self, member_ids: Iterable[str]) -> None:
        for member_id in member_ids:
            for session in self._sessions.pop(member_id, set()):
                self._answers.pop((member_id, session), None)

    def forget_all(self) -> None:
        self._answers.clear()
        self._sessions.clear()

    async def heard(self, msg: Msg) -> None:
        """The NATS callback of `MembersChanged.SUBJECT`: no await before forgetting, so a notice received
        before a reply is acted on before the code waiting for that reply resumes."""
        try:
            notice = MembersChanged.model_validate_json(msg.data)
        except ValidationError:
            log.warning("unreadable notice: every session check forgotten", subject=msg.subject)
            self.forget_all()
            return
        self.forget(notice.member_ids)

    def _drop(self, member_id: str, session: str) -> None:
        if self._answers.pop((member_id, session), None) is not None:
            sessions = self._sessions.get(member_id)
            if sessions is not None:
                sessions.discard(session)
                if not sessions:
                    del self._sessions[member_id]
