"""The READMEs tell the truth where a machine can tell: every `corridor …` command and option they name exists,
every `make` target, every CORRIDOR_* variable is read somewhere, every repository path they name is there, and
the SMTP connection README.md gives as its example delivers to a real SMTP server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest

from corridor.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, ROOT / "dbt_project" / "README.md", ROOT / "src" / "corridor" / "scorecards" / "README.md"]


def code_spans(path: Path) -> list[str]:
    """The `inline code` of a Markdown file, a span broken over lines joined with one space."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # fenced blocks are read separately where needed
    return [re.sub(r"\s+", " ", span).strip() for span in re.findall(r"`([^`]+)`", text)]


def corridor_commands(text: str) -> list[list[str]]:
    """Each `corridor …` command line in the spans, as words ('.venv/bin/corridor' too)."""
    found = []
    for span in text:
        for match in re.finditer(r"(?:^|[\s\"(])(?:\.venv/bin/)?corridor ([^;)\"]+)", span):
            found.append(match.group(1).split())
    return found


def resolve(words: list[str]) -> tuple[click.Command, list[str]] | None:
    """The click command the words name, and the words after it; None when a subcommand does not exist."""
    command: click.Command = main
    ctx = click.Context(main)
    rest = list(words)
    while isinstance(command, click.Group) and rest:
        word = rest[0]
        if word.startswith("-") or word in ("…", "ARGS…", "ARGS"):
            break
        alternatives = word.split("|")  # `stack up|down|init`, `dbt build|run|…`
        if not all(command.get_command(ctx, w) for w in alternatives):
            return None
        command = command.get_command(ctx, alternatives[0])
        rest = rest[1:]
    return command, rest


def unknown_parts(path: Path) -> list[str]:
    bad = []
    for words in corridor_commands(code_spans(path)):
        resolved = resolve(words)
        if resolved is None:
            bad.append(f"{path.name}: corridor {' '.join(words)}: no such command")
            continue
        command, rest = resolved
        if command.name == "dbt":  # dbt's own arguments, and corridor's --force
            continue
        options = {"--help", *(opt for param in command.params for opt in getattr(param, "opts", []))}
        for word in rest:
            if word.startswith("--") and word.split("=")[0] not in options:
                bad.append(f"{path.name}: corridor {' '.join(words)}: {command.name} has no option {word}")
    return bad


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_corridor_command_and_option_the_docs_name_exists(path):
    assert corridor_commands(code_spans(path)) or path != README  # the README names some: the parsing works
    assert unknown_parts(path) == []


def test_the_command_check_fails_on_a_command_or_option_that_does_not_exist(tmp_path):
    planted = tmp_path / "README.md"
    planted.write_text("Run `corridor scorecards republish` or `corridor scorecards publish --force` or "
                       "`corridor stack up|restart`; `corridor dbt build --force` is fine.\n", encoding="utf-8")
    assert len(unknown_parts(planted)) == 3


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set()
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_ %-]+):(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def test_every_make_target_the_readme_names_exists():
    targets = make_targets()
    named = {m.group(1) for span in code_spans(README) for m in re.finditer(r"(?:^|\s)make ([a-z][a-z-]*)", span)}
    fenced = "\n".join(re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S))
    named |= set(re.findall(r"^make ([a-z][a-z-]*)", fenced, flags=re.M))
    assert {"run", "test", "publish", "docs", "lint", "lock", "stack", "stack-down"} <= named
    assert sorted(named - targets) == []


def _reads(text: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text) is not None


def test_every_corridor_variable_the_readme_names_is_read_by_the_code():
    """Read by the code: src/, dags/, dbt's profile and macros, the Makefile and compose, the test fixtures."""
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "src").rglob("*.sql"), *(ROOT / "dags").glob("*.py"),
               ROOT / "dbt_project" / "profiles.yml", *(ROOT / "dbt_project" / "macros").glob("*.sql"),
               ROOT / "Makefile", ROOT / "docker-compose.yml", ROOT / "tests" / "conftest.py"]
    code = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    named = set(re.findall(r"\bCORRIDOR_[A-Z0-9_]*[A-Z0-9]\b", README.read_text(encoding="utf-8")))
    named.discard("CORRIDOR_PG")  # `CORRIDOR_PG*`, the profile's variables: each is named too
    assert len(named) > 30
    assert sorted(n for n in named if not _reads(code, n)) == []
    assert not _reads(code, "CORRIDOR_NO_SUCH_SETTING")  # the check can fail


def test_every_repository_path_the_readme_names_exists():
    """A path in code with a folder and a file suffix, from the root, src/corridor/ or dbt_project/; run-time
    paths (the state folder, out/, the demo stamp) and the spec outside this repository are left out."""
    outside = (".corridor/", "out/", "_demo/", "shared/", "/")
    missing = []
    for span in code_spans(README):
        for path in re.findall(r"(?:^|\s)([\w.-]+(?:/[\w.-]+)+\.(?:py|sql|yml|yaml|md|csv|toml|sh|lock|in))\b",
                               span):
            if path.startswith(outside):
                continue
            if not any((base / path).exists() for base in (ROOT, ROOT / "src" / "corridor", ROOT / "dbt_project")):
                missing.append(path)
    assert missing == []


def readme_smtp_connection() -> dict:
    """The AIRFLOW_CONN_SMTP_DEFAULT='{…}' example of README.md, as its JSON."""
    match = re.search(r"AIRFLOW_CONN_SMTP_DEFAULT='(\{.*?\})'", README.read_text(encoding="utf-8"), flags=re.S)
    assert match, "README.md gives no AIRFLOW_CONN_SMTP_DEFAULT='{…}' example"
    return json.loads(re.sub(r"\s+", " ", match.group(1)))


def test_the_readmes_smtp_connection_delivers_a_scorecard_mail(monkeypatch, tmp_path):
    """README.md's connection, pointed at a real SMTP server without TLS (aiosmtpd), delivers through
    corridor.scorecards.delivery from the example's sender; without its disable_ssl the provider opens SMTPS
    (TLS from the start), which such a server does not speak: the README says so."""
    from aiosmtpd.controller import Controller

    from corridor.scorecards.delivery import Message, send
    from tests.mailbox import Inbox, free_port

    connection = readme_smtp_connection()
    assert connection["conn_type"] == "smtp"
    port = free_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        attachment = tmp_path / "card.pdf"
        attachment.write_bytes(b"%PDF-1.7\n")
        message = Message(None, ["office@corridor.example"], "2022年5月月度例会", "<p>ok</p>", [attachment])
        sent = []
        local = {**connection, "host": "127.0.0.1", "port": port}
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_README", json.dumps(local))
        assert send([message], "smtp_readme", None, lambda m, accepted: sent.append(accepted)) == []
        assert sent == [["office@corridor.example"]]
        (received,) = inbox.messages()
        assert received["From"] == connection["extra"]["from_email"]
        assert received["To"] == "office@corridor.example"

        without_ssl_flag = {**local, "extra": {k: v for k, v in local["extra"].items() if k != "disable_ssl"}}
        without_ssl_flag["extra"]["timeout"] = 5
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_README", json.dumps(without_ssl_flag))
        failures = send([message], "smtp_readme", None, lambda m, accepted: None)
        assert len(failures) == 1 and "SSL" in str(failures[0][1])
    finally:
        controller.stop()
