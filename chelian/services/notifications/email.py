"""E-mail over SMTP with the standard library.

Settings come from the environment (CHELIAN_SMTP_HOST, _PORT, _USER, _PASSWORD, _FROM,
_STARTTLS) because only the notification worker needs them; without CHELIAN_SMTP_HOST
e-mail is off and e-mail notifications stay pending (visible, and sent once configured).
"""

from __future__ import annotations

import os
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage


class EmailError(Exception):
    """The SMTP server refused or could not be reached: retry later."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "chelian@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SmtpConfig | None:
        e = os.environ if env is None else env
        if not e.get("CHELIAN_SMTP_HOST"):
            return None
        return cls(
            e["CHELIAN_SMTP_HOST"],
            int(e.get("CHELIAN_SMTP_PORT", "25")),
            e.get("CHELIAN_SMTP_FROM", "chelian@localhost"),
            e.get("CHELIAN_SMTP_USER") or None,
            e.get("CHELIAN_SMTP_PASSWORD") or None,
            e.get("CHELIAN_SMTP_STARTTLS", "") in ("1", "true"),
        )


def send(config: SmtpConfig, to: str, subject: str, body: str, message_id_hint: str) -> None:
    """Send one plain-text message; raises EmailError on any SMTP or network failure."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = config.sender, to, subject
    msg["X-Chelian-Notification"] = message_id_hint
    msg.set_content(body)
    try:
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout_s) as smtp:
            if config.starttls:
                smtp.starttls()
            if config.username:
                smtp.login(config.username, config.password or "")
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise EmailError(f"{config.host}:{config.port}: {exc}") from None
