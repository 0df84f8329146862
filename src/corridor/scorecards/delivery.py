"""E-mail delivery through the Airflow SMTP provider, to the recipients of the configuration file.

- Recipients: ``config/recipients.yml`` (or the file ``CORRIDOR_RECIPIENTS_FILE``
  names): per area code, and ``ALL`` for the corridor office.
- Connection: ``smtp_default`` or the id in ``CORRIDOR_SMTP_CONN_ID``, configured
  as Airflow connections are (``AIRFLOW_CONN_SMTP_DEFAULT``, a secrets
  backend or the metastore). Without it: "SMTP not configured: nothing sent".
- Sender: the connection's ``from_email`` extra, else ``sender`` of the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from email.utils import formataddr, parseaddr
from pathlib import Path

import yaml
from markupsafe import escape

from corridor.config import project_root
from corridor.scorecards.data import ALL, AREA_ORDER, CORRIDOR_NAME, Scorecard
from corridor.scorecards.format import day, percent

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "smtp_default"


class RecipientsError(ValueError):
    pass


def smtp_conn_id() -> str:
    return os.environ.get("CORRIDOR_SMTP_CONN_ID") or DEFAULT_CONN_ID


def recipients_path() -> Path:
    return Path(os.environ.get("CORRIDOR_RECIPIENTS_FILE") or project_root() / "config" / "recipients.yml")


@dataclass(frozen=True)
class Recipients:
    sender: str | None
    by_area: dict[str, list[str]] = field(default_factory=dict)
    path: Path | None = None

    def for_area(self, area: str) -> list[str]:
        return list(self.by_area.get(area, []))


def load_recipients(path: Path | None = None) -> Recipients:
    """Read and check the recipients file: known area codes, addresses that look like addresses."""
    path = Path(path) if path else recipients_path()
    if not path.is_file():
        raise RecipientsError(f"recipients file {path} not found (set CORRIDOR_RECIPIENTS_FILE)")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise RecipientsError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(doc, dict):
        raise RecipientsError(f"{path}: expected a mapping with 'sender' and 'recipients'")
    areas = doc.get("recipients") or {}
    if not isinstance(areas, dict):
        raise RecipientsError(f"{path}: 'recipients' must map area codes to lists of addresses")
    by_area: dict[str, list[str]] = {}
    for area, addresses in areas.items():
        if area not in (ALL, *AREA_ORDER):
            raise RecipientsError(f"{path}: unknown area {area!r} (expected ALL or one of {', '.join(AREA_ORDER)})")
        if isinstance(addresses, str):
            addresses = [addresses]
        addresses = [str(a).strip() for a in addresses or [] if str(a).strip()]
        bad = [a for a in addresses if "@" not in a or any(c in a for c in " ,;<>\r\n")]
        if bad:
            raise RecipientsError(f"{path}: area {area}: not e-mail addresses: {', '.join(bad)}")
        by_area[area] = addresses
    return Recipients(sender=_sender(doc.get("sender"), path), by_area=by_area, path=path)


def _sender(value, path: Path) -> str | None:
    """'名称 <addr>' with the display name RFC 2047-encoded, so a Chinese name is a valid From header."""
    if not value:
        return None
    name, address = parseaddr(str(value))
    if "@" not in address:
        raise RecipientsError(f"{path}: sender {value!r} is not an e-mail address")
    return formataddr((name, address), charset="utf-8") if name else address


def smtp_configured(conn_id: str) -> bool:
    """True when an Airflow connection ``conn_id`` exists (env var, secrets backend or metastore)."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    try:
        SmtpHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def subject(sc: Scorecard) -> str:
    text = f"【{CORRIDOR_NAME}】{sc.edition.title(sc.period_start)}指标完成情况（{sc.area_name}）第{sc.edition_no}版"
    return text + ("【临时数据】" if sc.provisional else "")


def body_html(sc: Scorecard, attachments: list[str], *, data_sha256: str | None = None,
              data_summary: bool = True) -> str:
    """The e-mail's text. ``data_sha256``: the edition's data fingerprint (default the scorecard's).
    ``data_summary=False`` (an edition whose data changed since it was published: the attachments are the
    edition, ``sc`` holds the data as they are now) leaves out the status counts and the ranking."""
    counts = "、".join(f"{label}{n}项" for label, n in sc.status_counts.items())
    lines = [
        f"<p>现将{escape(sc.full_title)}（第{sc.edition_no}版）发送如下，PDF与XLSX见附件。</p>",
        # a re-published edition says what it is: the one to use from now on, and why there is one
        *([f"<p>本版替代此前发送的第{sc.edition_no - 1}版（上一版发布后，数据有补报或更正），请以本版为准。</p>"]
          if (sc.edition_no or 1) > 1 else []),
        "<ul>",
        f"<li>统计期：{day(sc.period_start)}至{day(sc.period_end)}；数据截至{day(sc.as_of)}</li>",
        *([f"<li>指标状态：{escape(counts)}</li>"] if data_summary else []),
        f"<li>质量检查：{escape(sc.gate_label)}</li>",
        "<li>报送完整性：" + (f"临时数据，缺报：{escape('；'.join(sc.completeness.missing))}" if sc.provisional
                         else "完整") + "</li>",
    ]
    if data_summary and sc.ranking and sc.area_code != ALL:
        mine = next((r for r in sc.ranking if r.area_code == sc.area_code), None)
        if mine:
            tied = sum(1 for r in sc.ranking if r.rank == mine.rank) > 1
            lines.append(f"<li>{sc.period_start.year}年度比拼：{'并列' if tied else ''}第{mine.rank}名"
                         f"（综合得分{percent(mine.score)}）</li>")
    lines.append("</ul>")
    lines.append("<p>附件：" + "、".join(str(escape(a)) for a in attachments) + "</p>")
    lines.append(f"<p style=\"color:#59636e\">本邮件由{CORRIDOR_NAME}数据平台自动发送；"
                 f"数据指纹 {(data_sha256 or sc.data_sha256)[:12]}。</p>")
    return "\n".join(lines)


@dataclass
class Message:
    scorecard: Scorecard
    to: list[str]
    subject: str
    html: str
    files: list[Path]


class MailServerUnreachable(Exception):
    """The SMTP session could not be opened (connection refused, timeout, TLS or login refused)."""


def describe_failure(exc: Exception) -> str:
    """A failed message's reason in one line: each refused address with the server's code and words
    (smtplib gives a dict of bytes), else the exception's text."""
    import smtplib

    refused = exc.recipients if isinstance(exc, smtplib.SMTPRecipientsRefused) else None
    if not refused:
        return f"{type(exc).__name__}: {exc}" if isinstance(exc, smtplib.SMTPException | OSError) else str(exc)
    return "; ".join(f"{address} refused by the mail server ({code} "
                     f"{reply.decode('utf-8', 'replace') if isinstance(reply, bytes) else reply})"
                     for address, (code, reply) in refused.items())


def send(messages: list[Message], conn_id: str, sender: str | None, on_sent, claim=None
         ) -> list[tuple[Message, Exception]]:
    """Send each message over one SMTP session; return the failures.

    ``on_sent(message, accepted)``: called after each message the server took, with the addresses it accepted.
    A message the server took for some addresses and refused for others is a failure too, an
    ``SMTPRecipientsRefused`` naming only the refused ones (smtplib reports them in sendmail's return value,
    and raises only when every address is refused). ``claim(message)``: called just before a message is sent;
    False skips it (another sender has it, or nobody is owed it any more); it may narrow ``message.to``.
    A session the relay ended (a 421 reply: its limit of messages per connection) is opened again for the next
    message; when it cannot be, that message and the rest fail as ``MailServerUnreachable``."""
    import smtplib

    from airflow.providers.smtp.hooks.smtp import SmtpHook

    failures: list[tuple[Message, Exception]] = []
    if not messages:
        return failures
    with contextlib.ExitStack() as session:
        try:
            hook = session.enter_context(SmtpHook(smtp_conn_id=conn_id))
        except Exception as exc:  # the mail server cannot be reached: nothing sent, every message reported
            unreachable = MailServerUnreachable(f"the mail server of connection {conn_id} cannot be reached "
                                                f"({type(exc).__name__}: {exc})")
            log.error("%s: nothing sent", unreachable)
            return [(message, unreachable) for message in messages]
        from_email = hook.from_email or sender
        if not from_email:
            raise RecipientsError(f"no sender: set from_email in connection {conn_id} or 'sender' in the "
                                  f"recipients file")
        down: MailServerUnreachable | None = None
        for message in messages:
            if claim is not None and not claim(message):
                continue
            if down is None and _session_closed(hook._smtp_client):
                # the relay ended the session (a limit of messages per connection, a restart): a new one
                try:
                    _reopen(hook)
                except Exception as exc:
                    down = MailServerUnreachable(f"the mail server of connection {conn_id} closed the session "
                                                 f"and cannot be reached again ({type(exc).__name__}: {exc})")
                    log.error("%s: the remaining messages are not sent", down)
            if down is not None:
                failures.append((message, down))
                continue
            try:
                refused = _sendmail(hook, message, from_email)
            except Exception as exc:  # one failed address must not stop the others; reported by the caller
                log.error("sending %s to %s failed: %s", message.subject, ", ".join(message.to), exc)
                failures.append((message, exc))
                continue
            accepted = [address for address in message.to if address not in refused]
            if accepted:
                on_sent(message, accepted)
            if refused:
                partly = smtplib.SMTPRecipientsRefused(refused)
                log.error("sending %s: %s", message.subject, describe_failure(partly))
                failures.append((message, partly))
    return failures


def _sendmail(hook, message: Message, from_email: str) -> dict:
    """Send ``message`` as ``SmtpHook.send_email_smtp`` does (the same MIME message, the session the hook opened
    with its connection's host, TLS, login and timeout, its retries) and return what that method drops:
    smtplib's ``{address: (code, reply)}`` of the addresses the server refused while it took the message for the
    others. Uses the hook's ``_build_message`` and ``_smtp_client`` (apache-airflow-providers-smtp 3.2.0,
    pinned in requirements.lock): its public method has no way to say that an address was refused."""
    import smtplib

    built = hook._build_message(to=message.to, subject=message.subject, html_content=message.html,
                                from_email=from_email, files=[str(p) for p in message.files])
    attempt, renewed = 0, False
    while True:
        client = hook._smtp_client
        if client is None:
            raise smtplib.SMTPServerDisconnected("the SMTP hook opened no session")
        try:
            return client.sendmail(from_addr=built["from_email"], to_addrs=built["recipients"],
                                   msg=built["mime_msg"].as_string()) or {}
        except Exception as exc:
            if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == 421 and not renewed:
                # 421: the relay closes the session (its limit of messages per connection, a restart) and did not
                # take the message: once more, on a new session (smtplib closed this one)
                renewed = True
                _reopen(hook)
                continue
            # a session lost otherwise may have delivered the message: not sent again (a rerun sends what is not
            # recorded), its own error reported rather than a retry's "please run connect() first"
            if attempt == hook.smtp_retry_limit or _session_closed(client):
                raise
            attempt += 1


def _session_closed(client) -> bool:
    """No SMTP session open: none yet, or smtplib closed it (a 421 reply, the connection lost)."""
    return client is None or getattr(client, "sock", None) is None


def _reopen(hook) -> None:
    """A new SMTP session on ``hook`` (its connection's host, TLS, login, timeout and retries: ``get_conn``)."""
    client, hook._smtp_client = hook._smtp_client, None
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
    hook.get_conn()
