"""The mail sender against a real SMTP server that insists on encryption and credentials (aiosmtpd with a
certificate made here by a throwaway CA): STARTTLS then AUTH (the usual relay on port 587), implicit TLS
(port 465), a certificate that no trusted CA signed, a wrong password, and the whole service sending a
confirmation e-mail that way."""
from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream import TestApp

from forum_ouvert.launcher import free_port
from services.notifications import mail
from services.notifications.sender import Connection
from shared.contracts.notifications import Subscribe
from shared.rpc import RpcClient
from shared.settings import Settings
from tests.notifications.harness import SmtpServer, eventually

pytestmark = pytest.mark.integration

USER, PASSWORD = "forum-relay", "mot-de-passe-du-relais"
MESSAGE = (b"From: Forum ouvert <ne-pas-repondre@forum.example.org>\r\nTo: lea@exemple.fr\r\n"
           b"Subject: Essai\r\nMessage-ID: <essai@forum.example.org>\r\n\r\nBonjour.\r\n")


# ---------------------------------------------------------------- a CA and the server's certificate
@dataclass
class Certificates:
    ca_file: Path       # what the sender trusts
    server: ssl.SSLContext


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test CA")).issuer_name(_name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return Certificates(ca_file, server)


# ---------------------------------------------------------------- a server that wants TLS and a password
@dataclass
class Logins:
    """Every AUTH attempt: (user name, whether the connection was encrypted, accepted)."""

    attempts: list[tuple[str, bool, bool]] = field(default_factory=list)

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER
              and auth_data.password.decode() == PASSWORD)
        self.attempts.append((auth_data.login.decode(), server.transport.get_extra_info("ssl_object") is not None, ok))
        return AuthResult(success=ok)


@dataclass
class TlsSmtp:
    server: SmtpServer
    logins: Logins


@contextmanager
def running_smtp(certs: Certificates, *, implicit: bool) -> Iterator[TlsSmtp]:
    """STARTTLS required before anything else (`implicit=False`) or TLS from the first byte; AUTH required
    before MAIL, and refused on a connection in clear."""
    server, logins = SmtpServer(port=free_port()), Logins()
    # (aiosmtpd's auth_require_tls only knows STARTTLS: with implicit TLS every byte is encrypted anyway)
    tls: dict[str, Any] = ({"ssl_context": certs.server, "auth_require_tls": False} if implicit
                           else {"tls_context": certs.server, "require_starttls": True, "auth_require_tls": True})
    controller = Controller(server, hostname="127.0.0.1", port=server.port, authenticator=logins,
                            auth_required=True, **tls)
    controller.start()
    try:
        yield TlsSmtp(server, logins)
    finally:
        controller.stop()


def settings_for(tls: TlsSmtp, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"smtp_host": "127.0.0.1", "smtp_port": tls.server.port, "smtp_username": USER,
                              "smtp_password": PASSWORD, "mail_send_timeout": 10, "data_dir": tmp_path}
    return Settings(**{**values, **overrides})


async def send_one(settings: Settings) -> str:
    conn = Connection(settings)
    try:
        return await conn.send("lea@exemple.fr", MESSAGE)
    finally:
        await conn.close()


# ---------------------------------------------------------------- the tests
async def test_starttls_then_auth_against_the_configured_ca(certificates: Certificates, tmp_path: Path) -> None:
    with running_smtp(certificates, implicit=False) as tls:
        reply = await send_one(settings_for(tls, tmp_path, smtp_starttls=True, smtp_ca_file=certificates.ca_file))
    assert reply.startswith("250")
    assert [m["Subject"] for m in tls.server.received] == ["Essai"]
    assert tls.logins.attempts == [(USER, True, True)]  # one login, on the encrypted connection


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # see running_smtp
async def test_implicit_tls(certificates: Certificates, tmp_path: Path) -> None:
    with running_smtp(certificates, implicit=True) as tls:
        reply = await send_one(settings_for(tls, tmp_path, smtp_tls=True, smtp_ca_file=certificates.ca_file))
    assert reply.startswith("250")
    assert [m["Subject"] for m in tls.server.received] == ["Essai"]
    assert tls.logins.attempts == [(USER, True, True)]


async def test_a_certificate_no_trusted_ca_signed_gets_no_password(certificates: Certificates,
                                                                   tmp_path: Path) -> None:
    with running_smtp(certificates, implicit=False) as tls:
        with pytest.raises(mail.TemporaryFailure):  # retried later, once the operator has fixed it
            await send_one(settings_for(tls, tmp_path, smtp_starttls=True))  # the system's CAs only
    assert tls.logins.attempts == [] and tls.server.received == []


async def test_a_wrong_password_fails_and_is_never_shown(certificates: Certificates, tmp_path: Path) -> None:
    wrong = "pas-le-bon-mot-de-passe"
    with running_smtp(certificates, implicit=False) as tls:
        settings = settings_for(tls, tmp_path, smtp_starttls=True, smtp_ca_file=certificates.ca_file,
                                smtp_password=wrong)
        with pytest.raises(mail.TemporaryFailure) as failed:
            await send_one(settings)
    assert tls.logins.attempts == [(USER, True, False)] and tls.server.received == []
    assert wrong not in str(failed.value)
    assert wrong not in repr(settings) and wrong not in settings.model_dump_json()


async def test_the_service_sends_its_mail_over_starttls_with_credentials(
        certificates: Certificates, own_nats: str, notifications_db: str, tmp_path: Path) -> None:
    from services.notifications.service import SERVICE

    with running_smtp(certificates, implicit=False) as tls:
        settings = settings_for(tls, tmp_path, smtp_starttls=True, smtp_ca_file=certificates.ca_file,
                                nats_url=own_nats, database_url=notifications_db,
                                public_url="https://forum.example.org", outbox_poll_interval=0.2)
        service = SERVICE.build(settings)
        async with TestApp(service.app):
            await RpcClient(service.broker)(Subscribe(email="lea@exemple.fr", topics=["minutes"]))
            [confirm] = await eventually(lambda: tls.server.to("lea@exemple.fr"), timeout=20)
    assert "/abonnements/confirmer" in confirm.get_body(("plain",)).get_content()
    assert tls.logins.attempts and all(encrypted and ok for _, encrypted, ok in tls.logins.attempts)
