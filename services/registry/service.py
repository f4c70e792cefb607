"""The registry: who the forum's members are. People register and confirm their address, the
secretariat approves or rejects them, members keep their profile up to date, sign in with single-use
links sent by e-mail (each sign-in a session the registry can end), and may take a copy of their data or
have it erased. Every change is published
as an event, from which the other services keep what they need."""
from __future__ import annotations

from services.registry import gdpr, members, sign_in
from shared.contracts.registry import (
    EmailVerificationRequested, EmailVerified, MemberApproved, MemberErased, MemberRegistered, MemberRejected,
    MembersChanged, ProfileUpdated, RegistrationRepeated, RoleGranted, SignInRequested,
)
from shared.service import ServiceDef

SERVICE = ServiceDef(
    "registry", title="Registre des membres",
    operations=[
        members.register, members.verify_email, sign_in.check_email_link, sign_in.confirm_email,
        sign_in.request_sign_in, sign_in.check_sign_in_link, sign_in.redeem_sign_in,
        sign_in.check_session, sign_in.end_session, sign_in.end_all_sessions,
        members.get_member, members.list_members, members.approve_member, members.reject_member,
        members.update_profile,
        gdpr.export, gdpr.erase,
    ],
    produces=[MemberRegistered, EmailVerificationRequested, EmailVerified, SignInRequested, RegistrationRepeated,
              MemberApproved, MemberRejected, ProfileUpdated, RoleGranted, MemberErased],
    broadcasts=[MembersChanged],  # to the web fronts' session checks
)
