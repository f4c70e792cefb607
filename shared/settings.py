"""One way to configure: pydantic-settings, env vars prefixed FORUM_, documented defaults.

Every process reads the same `Settings` (one section per service below); a service only looks at the
fields it needs.
`database_url` is per process: `forum-ouvert up` and the compose file give each service its own.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("registry", "forum", "minutes", "notifications")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORUM_", extra="ignore")

    # -- where things are
    data_dir: Path = Field(Path(".forum-data"), description="Local state: SQLite files, mail, keys.")
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server(s), comma separated.")
    database_url: str = Field("", description="SQLAlchemy async URL of this service's own database; "
                              "empty = SQLite file <data_dir>/<service>.db.")
    public_url: str = Field("http://127.0.0.1:8000", description="Address of the web front, for links in e-mails.")

    # -- JetStream
    stream_replicas: int = Field(1, description="Replicas of every stream (3 in the cluster).")
    consumer_max_deliver: int = Field(6, description="Attempts before an event is parked on the dead-letter subject.")
    consumer_backoff: list[float] = Field([0.5, 2, 10, 30, 60], description="Delay (s) before each retry.")
    consumer_ack_wait: float = Field(5.0, gt=0, description="Seconds without an ack or a progress signal "
                                     "before JetStream hands a message to another consumer: how soon a killed "
                                     "process's messages come back (running handlers signal progress meanwhile).")
    consumer_gather: float = Field(0.25, ge=0, description="During a burst of events, seconds between two "
                                   "pulls of a batch consumer: its batches then hold what arrived meanwhile, "
                                   "and their fixed cost (a transaction) is paid less often; a burst's events "
                                   "wait at most that long. 0: pull again as soon as a batch is handed over.")
    rpc_timeout: float = Field(10.0, description="Seconds the web front waits for a service's reply.")
    rpc_workers: int = Field(16, description="Concurrent request handlers per RPC subject (one whose "
                             "requests wait at a desk to be decided together, as « Je participe », takes up "
                             "to its desk's group: see shared/desk.py).")
    db_pool_size: int = Field(10, description="Database connections per service process (+2 overflow).")
    outbox_relay_enabled: bool = Field(True, description="Run the outbox relay in this process (off only for fault tests).")
    outbox_poll_interval: float = Field(1.0, description="Seconds between outbox sweeps when no commit woke the relay.")

    # -- logging
    log_format: str = Field("console", description="console (local) or json (deployment).")
    log_level: str = Field("INFO")

    # -- e-mail
    smtp_host: str = Field("127.0.0.1")
    smtp_port: int = Field(1025)
    smtp_username: str = Field("", description="SMTP AUTH user name; empty = no authentication.")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP AUTH password (never logged).")
    smtp_starttls: bool = Field(False, description="Require STARTTLS before AUTH and sending (port 587); "
                                "true in deployment.")
    smtp_tls: bool = Field(False, description="Implicit TLS from the first byte (port 465); takes precedence "
                           "over smtp_starttls.")
    smtp_ca_file: Path | None = Field(None, description="CA certificates (PEM) the SMTP server's certificate is "
                                      "checked against; default: the system's.")
    mail_from: str = Field("Forum ouvert <ne-pas-repondre@forum-ouvert.local>")
    reminder_interval: float = Field(30.0, description="Seconds between checks for 48-hour session reminders.")
    mail_connections: int = Field(16, ge=1, le=200, description="SMTP connections the mail sender keeps open "
                                  "(each sends one message at a time).")
    mail_rate: float = Field(0.0, ge=0, description="Messages per second at most, all destinations together "
                             "(0 = no limit).")
    mail_domain_rate: float = Field(0.0, ge=0, description="Messages per second at most to one recipient domain "
                                    "(0 = no limit).")
    mail_domain_slow_for: float = Field(60.0, ge=0, description="Seconds a domain's messages wait after it "
                                        "answered 421 or stalled (doubled if it happens again soon, up to "
                                        "`mail_retry_max`); the other domains keep going.")
    mail_domain_connections: int = Field(4, ge=1, description="Connections busy with one recipient domain at "
                                         "most, so a stalled domain leaves the others free.")
    mail_send_timeout: float = Field(30.0, gt=0, description="Seconds one SMTP exchange may take before it "
                                     "counts as a temporary failure.")
    mail_retry_base: float = Field(5.0, gt=0, description="Seconds before the first retry after a temporary "
                                   "failure; doubled at each attempt, with jitter.")
    mail_retry_max: float = Field(3600.0, gt=0, description="Longest wait between two attempts.")
    mail_max_attempts: int = Field(12, ge=1, description="Attempts before a temporarily failing message is "
                                   "recorded as failed.")
    mail_hard_failure_limit: int = Field(3, ge=1, description="Permanent refusals (5xx) after which an address "
                                         "is suspended.")
    mail_claim_lease: float = Field(300.0, gt=0, description="Seconds after which a message still marked "
                                    "in flight by another sender is taken back and sent again (same Message-ID).")
    fanout_batch: int = Field(1000, ge=1, description="Deliveries a notice's fan-out inserts per transaction.")
    notice_link_key: str = Field("", description="Signs the confirm, manage and unsubscribe links of "
                                 "subscriptions; generated into <data_dir>/notice-links.key if empty.")
    subscription_confirm_ttl: int = Field(7 * 24 * 3600, description="Seconds a subscription confirmation "
                                          "link is valid; unconfirmed requests are forgotten after it.")
    subscription_manage_ttl: int = Field(60 * 24 * 3600, description="Seconds a manage link is valid.")
    subscription_unsubscribe_ttl: int = Field(365 * 24 * 3600, description="Seconds an unsubscribe link "
                                              "(and the List-Unsubscribe header) is valid.")
    subscription_confirm_limit: int = Field(3, ge=1, description="Confirmation e-mails to one address per day "
                                            "at most (further requests get the same answer, no e-mail).")
    mail_dir: Path | None = Field(None, description="Where the local mail catcher writes caught mail "
                                  "(default <data_dir>/mail).")

    # -- web
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    secret_key: str = Field("", description="Signs session cookies; generated into <data_dir>/secret.key if empty.")
    cookie_secure: bool | None = Field(None, description="Secure flag on cookies; default: true when public_url "
                                       "is https (which also sends Strict-Transport-Security).")
    session_max_age: int = Field(14 * 24 * 3600, description="Seconds a sign-in lasts.")
    session_check_seconds: float = Field(10.0, ge=0, le=300, description=(
        "Seconds the web front keeps the registry's answer that a session is live (forgotten at once when the "
        "registry says the member changed); 0 asks the registry on every page."))
    page_cache_seconds: float = Field(1.0, ge=0, le=60, description=(
        "Seconds a web front keeps the public pages it served to visitors who are not signed in (forgotten at "
        "once by any form posted to it); 0 makes every page anew."))
    rate_limit_per_minute: int = Field(10, description="Register / sign-in POSTs per client address per minute.")
    trusted_proxies: list[str] = Field([], description="Addresses or networks (CIDR) of the reverse proxies in "
                                       "front of the web front, as a JSON list, e.g. [\"10.0.0.0/8\"]: only from "
                                       "them is X-Forwarded-For believed (the client is its rightmost address not "
                                       "in this list). Empty: the client is the connection's peer.")
    local_mode: bool = Field(False, description="Enables /dev/mail (the local mail catcher viewer).")
    theme_dir: Path | None = Field(None, description="Folder with templates/ and static/ of the site theme.")

    # -- legal pages and contact form (the facts the operator's texts name; the texts themselves are files)
    legal_dir: Path | None = Field(None, description="Folder whose files replace the default texts of the legal "
                                   "pages, by name (services/web/legal/: mentions_legales.html, "
                                   "donnees_personnelles.html, accessibilite.html, contact.html).")
    site_publisher: str = Field("Conseil économique, social et environnemental (CESE)",
                                description="Who publishes the site (mentions légales, LCEN art. 6).")
    site_publisher_address: str = Field("9, place d'Iéna, 75775 Paris Cedex 16",
                                        description="Postal address of the publisher.")
    publication_director: str = Field("Thierry Beaudet, président du CESE",
                                      description="Directeur ou directrice de la publication.")
    site_host: str = Field("Conseil économique, social et environnemental (CESE)",
                           description="Who hosts the site (name of the hosting provider).")
    site_host_address: str = Field("9, place d'Iéna, 75775 Paris Cedex 16",
                                   description="Postal address of the host.")
    dpo_contact: str = Field("Délégué à la protection des données du CESE, 9, place d'Iéna, 75775 Paris Cedex 16",
                             description="How to reach the data protection officer (postal address).")
    dpo_email: str = Field("", description="The data protection officer's e-mail address, if they have one.")
    secretariat_email: str = Field("secretariat@forum-ouvert.local",
                                   description="Where the contact form's messages go (the forum's secretariat).")
    accessibility_status: str = Field("non conforme", pattern="^(non conforme|partiellement conforme|totalement "
                                      "conforme)$", description="RGAA compliance shown in the footer and the "
                                      "statement: « partiellement » or « totalement conforme » only after an audit.")
    contact_limit: int = Field(3, ge=1, description="Contact messages from one e-mail address per day at most.")
    contact_retention_days: int = Field(365, ge=1, description="Days a contact message is kept, then deleted.")
    # Not under the streams' 90 days: an event redelivered after its entry lost its address must still find
    # the entry (and not mail twice).
    delivery_log_retention_days: int = Field(
        365, ge=90, description="Days an e-mail's address and subject are kept in the delivery log once it has "
                                "left (or failed); then only what happened is kept.")

    # -- forum
    vote_close_interval: float = Field(2.0, description="Seconds between sweeps that close votes past their "
                                       "closing time (a vote shows as closed, result pending, meanwhile).")

    # -- minutes: the public record
    ledger_key_file: Path | None = Field(None, description="Ed25519 signing key of the public record, as a C2SP "
                                         "signer key string; default <data_dir>/ledger.key, created 0600 at first "
                                         "start. Every replica of the minutes service must use the same file: losing "
                                         "it means starting a new log under a new key, leaking it lets anyone sign "
                                         "forged checkpoints. Never logged.")
    ledger_origin: str = Field("forum-ouvert.local/registre",
                               description="Checkpoint origin line, also the key name (C2SP: a schema-less URL "
                               "naming this log). Set it to the public host, e.g. forum-ouvert.cese.fr/registre, "
                               "before the first start: changing it later needs a new key.")
    ledger_checkpoint_interval: float = Field(0.5, description="Minimum seconds between two signed checkpoints.")
    ledger_checkpoint_poll: float = Field(5.0, description="Seconds between checks for leaves appended by other "
                                          "replicas (a local append wakes the signer at once).")

    # -- registry
    verify_token_ttl: int = Field(48 * 3600, description="Seconds an e-mail verification link is valid.")
    sign_in_token_ttl: int = Field(15 * 60, description="Seconds a sign-in link is valid.")
    link_mail_limit: int = Field(5, ge=1, description="Sign-in links, and verification links, mailed to one "
                                 "address per hour at most. Further requests get the same answer and no e-mail, "
                                 "so the last link sent stays valid: flooding someone's address cannot stop "
                                 "them from signing in.")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for v in value:
            ipaddress.ip_network(v.strip(), strict=False)  # ValueError: the setting is refused at start
        return [v.strip() for v in value]

    @model_validator(mode="after")
    def _secure_cookies_behind_https(self) -> Settings:
        if self.cookie_secure is None:
            self.cookie_secure = self.public_url.lower().startswith("https://")
        return self

    @property
    def https(self) -> bool:
        """The forum is served over HTTPS (its public address says so)."""
        return self.public_url.lower().startswith("https://")

    def service_database_url(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    @property
    def ledger_key_path(self) -> Path:
        return self.ledger_key_file or self.data_dir / "ledger.key"

    @property
    def mail_folder(self) -> Path:
        return self.mail_dir or self.data_dir / "mail"


@lru_cache
def get_settings() -> Settings:
    return Settings()
