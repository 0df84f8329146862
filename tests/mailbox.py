"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) and the Airflow connection that points at it."""

from __future__ import annotations

import email
import json
import re
import socket
import time
from email import policy
from html import unescape


class Inbox:
    """aiosmtpd handler keeping every message received."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]

    def wait_for(self, predicate, timeout: float, poll: float = 0.5) -> list[email.message.EmailMessage]:
        """The messages matching predicate, waiting up to timeout seconds for at least one."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages() if predicate(m)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(poll)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smtp_connection_json(port: int, from_email: str | None = "alerts@corridor.example") -> str:
    """AIRFLOW_CONN_SMTP_DEFAULT for aiosmtpd: no TLS, no login."""
    extra = {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 0}
    if from_email:
        extra["from_email"] = from_email
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra})


def body_text(message: email.message.EmailMessage) -> str:
    """The alert's text: its HTML body with the tags removed and entities decoded."""
    part = message.get_body(preferencelist=("html", "plain"))
    return unescape(re.sub(r"<[^>]+>", "", part.get_content()))
