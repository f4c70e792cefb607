"""Registry contracts: member events and the commands the web front sends."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from shared.contracts.common import (
    SQL_INT_MAX, ActorRequest, Identifier, MultiLine, PersonName, Request, SingleLine,
)
from shared.contracts.envelope import EventData


class College(StrEnum):
    PUBLIC_ACTOR = "public_actor"
    CIVIL_SOCIETY = "civil_society"
    CITIZEN = "citizen"


COLLEGE_LABELS = {
    College.PUBLIC_ACTOR: "Acteurs publics",
    College.CIVIL_SOCIETY: "Organisations de la société civile",
    College.CITIZEN: "Citoyennes et citoyens",
}


class MemberStatus(StrEnum):
    PENDING_VERIFICATION = "pending_verification"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    ERASED = "erased"


STATUS_LABELS = {
    MemberStatus.PENDING_VERIFICATION: "En attente de confirmation",
    MemberStatus.PENDING_APPROVAL: "En attente de validation",
    MemberStatus.APPROVED: "Membre validé·e",
    MemberStatus.REJECTED: "Refusé",
    MemberStatus.ERASED: "Supprimé",
}


class Role(StrEnum):
    MEMBER = "member"
    SECRETARIAT = "secretariat"


Name = PersonName
Organisation = Annotated[str, SingleLine(max_length=160)]
Reason = Annotated[str, MultiLine(min_length=3, max_length=1000)]
Token = Annotated[str, StringConstraints(strip_whitespace=True, min_length=16, max_length=128)]
SessionId = Annotated[str, StringConstraints(min_length=16, max_length=128)]


# ---------------------------------------------------------------- events
class MemberRegistered(EventData):
    TYPE = "registry.member.registered"
    member_id: str
    public_id: str
    full_name: str
    email: str
    organisation: str
    college: College | None
    role: Role


class EmailVerificationRequested(EventData):
    """Carries the single-use link token to notifications, which mails it. Expires with the token."""

    TYPE = "registry.email_verification.requested"
    member_id: str
    email: str  # carried so the e-mail never waits for another event to arrive first
    full_name: str
    token: str
    expires_at: datetime


class EmailVerified(EventData):
    TYPE = "registry.member.email_verified"
    member_id: str


class SignInRequested(EventData):
    TYPE = "registry.sign_in.requested"
    member_id: str
    email: str
    full_name: str
    token: str
    expires_at: datetime


class RegistrationRepeated(EventData):
    """Someone registered with the address of an existing account. The web front answers as for a new
    registration (the form does not tell who is a member); the owner of the address is mailed a
    one-time sign-in link instead, with a word saying they already have an account."""

    TYPE = "registry.registration.repeated"
    member_id: str
    email: str
    full_name: str
    token: str
    expires_at: datetime


class MemberApproved(EventData):
    """Public fact: only the pseudonymous id and the college are meant for the public record."""

    TYPE = "registry.member.approved"
    member_id: str
    public_id: str
    college: College | None


class MemberRejected(EventData):
    TYPE = "registry.member.rejected"
    member_id: str
    reason: str


class ProfileUpdated(EventData):
    TYPE = "registry.member.profile_updated"
    member_id: str
    full_name: str
    organisation: str


class RoleGranted(EventData):
    """An existing account was given a role (e.g. promoted to the secretariat by the CLI)."""

    TYPE = "registry.member.role_granted"
    member_id: str
    role: Role


class MemberErased(EventData):
    TYPE = "registry.member.erased"
    member_id: str
    public_id: str


class MembersChanged(BaseModel):
    """« These members changed »: their standing, role, profile or sessions. A core NATS notice, not a
    stream event: nothing to replay, it only tells the web fronts to forget the session checks they keep
    for these members (services/web/session_checks.py). Sent after the commit and before the reply to the
    command that made the change."""

    SUBJECT: ClassVar[str] = "broadcast.registry.members-changed"
    model_config = ConfigDict(extra="forbid", frozen=True)
    member_ids: list[Annotated[str, Field(max_length=36)]] = Field(min_length=1, max_length=1000)


REGISTRY_EVENTS: list[type[EventData]] = [
    MemberRegistered, EmailVerificationRequested, EmailVerified, SignInRequested, RegistrationRepeated,
    MemberApproved, MemberRejected, ProfileUpdated, RoleGranted, MemberErased,
]


# ---------------------------------------------------------------- replies
class MemberView(BaseModel):
    member_id: str
    public_id: str
    full_name: str
    email: str | None
    organisation: str
    college: College | None
    role: Role
    status: MemberStatus
    rejection_reason: str | None = None
    registered_at: datetime
    verified_at: datetime | None = None
    decided_at: datetime | None = None


class MemberList(BaseModel):
    members: list[MemberView]
    total: int | None = None  # members matching the filter, all pages together (None: not counted)


class Registered(BaseModel):
    member_id: str
    status: MemberStatus


class SignedIn(BaseModel):
    """A redeemed sign-in link: the member, and the id of the session the registry opened for the
    browser (kept in its signed cookie, checked on every page, ended by « Se déconnecter »)."""

    member: MemberView
    session: str


class Accepted(BaseModel):
    """Reply to commands whose outcome must not reveal anything (sign-in requests)."""

    accepted: bool = True


class Export(BaseModel):
    data: dict[str, Any]


# ---------------------------------------------------------------- requests
class Register(Request[Registered], op="registry.register"):
    full_name: Name
    email: EmailStr = Field(max_length=254)
    organisation: Organisation = ""
    college: College
    charter_accepted: bool

    @field_validator("charter_accepted")
    @classmethod
    def _must_accept(cls, v: bool) -> bool:
        if not v:
            raise ValueError("la charte du forum doit être acceptée")
        return v


class VerifyEmail(Request[MemberView], op="registry.verify-email"):
    """Spend an address-verification link without signing in (scripts and tools; the web front uses
    `ConfirmEmail`)."""

    token: Token


class CheckEmailLink(Request[Accepted], op="registry.check-email-link"):
    """Whether an address-verification link can still be used, without spending it: the page the link
    opens asks it, so a link already used says so at once (a mail scanner's visit spends nothing)."""

    token: Token


class ConfirmEmail(Request[SignedIn], op="registry.confirm-email"):
    """Spend an address-verification link: the address is confirmed and a session opened for the
    browser that confirmed it, together (whoever holds the single-use link from the mailbox owns it)."""

    token: Token


class RequestSignIn(Request[Accepted], op="registry.request-sign-in"):
    email: EmailStr = Field(max_length=254)


class CheckSignInLink(Request[Accepted], op="registry.check-sign-in-link"):
    """Whether a sign-in link can still be used, without spending it: the page the link opens asks it, so a
    link already used, expired or replaced by a newer one says so at once instead of after a click."""

    token: Token


class RedeemSignIn(Request[SignedIn], op="registry.redeem-sign-in"):
    token: Token


class CheckSession(Request[MemberView], op="registry.check-session"):
    """The member signed in with this session, while it is live (not ended, not too old); NotFound else."""

    member_id: str = Field(max_length=36)
    session: SessionId


class EndSession(Request[Accepted], op="registry.end-session"):
    """« Se déconnecter »: this browser's session ends (every copy of its cookie stops working)."""

    member_id: str = Field(max_length=36)
    session: SessionId


class GetMember(Request[MemberView], op="registry.get-member"):
    member_id: Identifier


class ListMembers(ActorRequest[MemberList], op="registry.list-members"):
    """Members, latest registration first. Without `limit`, every one of them (the check-in page's list
    of walk-ins); with it, one page, and `total` counted."""

    status: MemberStatus | None = None
    limit: int | None = Field(default=None, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=SQL_INT_MAX)
    oldest_first: bool = False  # the secretariat's dashboard: who has waited longest


class ApproveMember(ActorRequest[MemberView], op="registry.approve-member"):
    member_id: Identifier


class RejectMember(ActorRequest[MemberView], op="registry.reject-member"):
    member_id: Identifier
    reason: Reason


class UpdateProfile(ActorRequest[MemberView], op="registry.update-profile"):
    full_name: Name
    organisation: Organisation = ""


class ExportData(ActorRequest[Export], op="registry.export"):
    pass


class EraseMember(ActorRequest[Accepted], op="registry.erase"):
    pass


class EndAllSessions(ActorRequest[Accepted], op="registry.end-all-sessions"):
    """« Se déconnecter partout »: every session of the member ends, on every browser."""
