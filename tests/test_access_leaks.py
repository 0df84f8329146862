"""Secrets and personal data outside the protected raw tables: messages, reports, data docs, the command line.

- A talent record quarantined for a value that holds an ID number (an ID typed into employer_uscc: both are
  18 characters) keeps it masked in the quarantine message too, not only in the record.
- The quality gate's failure report (the task log and the data team's alert mail) and its data docs show no ID
  number in clear, the case the check on person_key exists for.
- A warehouse URL whose password holds a character that must be percent-encoded (% or /) is refused in one
  line that does not print the password (libpq's and urllib's errors quote it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from corridor.ingest import ingest_feed
from corridor.normalize import id_check_char
from tests.conftest import ROOT, TEST_PII_KEY

ID = "33030319900101123" + id_check_char("33030319900101123")
OTHER_ID = "11010119800101123" + id_check_char("11010119800101123")
NAME = "欧阳娜娜"
RECORD = {"record_id": "HR-L-1", "id_number": ID, "name": NAME, "category": "C", "title": "教授",
          "employer_name": "温州某科技有限公司", "employer_uscc": None, "area": "LW", "intake_date": "2021-02-12",
          "intake_type": "引进", "overseas": True, "team_id": None, "action": "new"}


def test_an_id_number_in_another_field_is_masked_in_the_quarantine_message(warehouse_url, tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    lines = [{**RECORD, "employer_uscc": OTHER_ID},                       # an ID typed as the employer's USCC
             {**RECORD, "record_id": "HR-L-2", "intake_date": "2021-13-45"},  # a bad date: the ID only in the record
             {**RECORD, "record_id": "HR-L-3", "id_number": ID[:16]}]          # a malformed ID
    (hr / "talent_202102.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n",
                                            encoding="utf-8")
    summary = ingest_feed(warehouse_url, "hr", tmp_path, pii_key=TEST_PII_KEY)

    assert (summary.rows_loaded, summary.rows_quarantined) == (0, 3), summary
    with psycopg.connect(warehouse_url) as conn:
        stored = conn.execute("select rule_code, message, record::text from ops.quarantine order by source_row"
                              ).fetchall()
        ledger = conn.execute("select coalesce(string_agg(coalesce(message, ''), ' '), '') from ops.load_ledger"
                              ).fetchone()[0]
    assert [rule for rule, *_ in stored] == ["invalid_uscc", "invalid_date", "invalid_id_number"], stored
    assert "employer_uscc '110101************'" in stored[0][1], stored[0][1]
    everything = " ".join(m + r for _, m, r in stored) + ledger + str(summary)
    for clear in (ID, OTHER_ID, ID[:16], OTHER_ID[6:], NAME, NAME[1:]):
        assert clear not in everything, clear


@pytest.fixture
def gx_root(tmp_path) -> Path:
    return Path(shutil.copytree(ROOT / "expectations", tmp_path / "expectations",
                                ignore=shutil.ignore_patterns("uncommitted")))


def test_an_id_number_where_the_pseudonym_belongs_is_masked_in_the_gates_report_and_data_docs(warehouse_copy,
                                                                                              gx_root):
    from corridor.quality import QualityGateFailed, quality_gate

    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        conn.execute("update raw.hr_talents set person_key = %s, title = %s"
                     " where ctid = (select min(ctid) from raw.hr_talents)", (ID, f"教授 {OTHER_ID}"))

    with pytest.raises(QualityGateFailed) as raised:
        quality_gate(warehouse_copy, root=gx_root)

    message = str(raised.value)
    assert "ExpectColumnValuesToMatchRegex on raw.hr_talents (person_key)" in message, message
    example = next(line for line in message.splitlines() if line.startswith("    e.g. "))
    assert "person_key=330303************" in example and "title=教授 110101************" in example, example
    assert ID not in message and OTHER_ID not in message
    written = [p for p in (gx_root / "uncommitted").rglob("*") if p.is_file()
               and (ID in p.read_text(encoding="utf-8", errors="replace")
                    or ID[6:] in p.read_text(encoding="utf-8", errors="replace"))]
    assert written == [], written
    docs = list((gx_root / "uncommitted").rglob("*hr_talents*.json"))
    assert docs and any("330303************" in p.read_text(encoding="utf-8") for p in docs)


@pytest.mark.parametrize("password", ["Hx7%Qk2v", "Hx7/Qk2v"])
def test_a_password_that_needed_percent_encoding_is_not_printed(password, tmp_path):
    env = {**os.environ, "CORRIDOR_STATE_DIR": str(tmp_path / "state"),
           "CORRIDOR_WAREHOUSE_URL": f"postgresql://etl:{password}@127.0.0.1:1/corridor"}
    for args in (["ingest", "hr"], ["db", "url"]):
        proc = subprocess.run([sys.executable, "-m", "corridor.cli", *args], capture_output=True, text=True,
                              env=env)
        output = proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: CORRIDOR_WAREHOUSE_URL"), \
            output[-3000:]
        assert "percent-encoded" in lines[0]
        for part in (password, "Hx7", "Qk2v"):
            assert part not in output, (part, output[-3000:])


@pytest.mark.parametrize("url", ["postgresql:///corridor", "postgresql://etl@/corridor?host=/run/postgresql"])
def test_a_url_of_the_local_socket_is_still_taken(monkeypatch, url):
    """The check above compares the server libpq reads with the project's; a URL naming no host (libpq's default
    socket) or a socket folder is no password left unencoded."""
    from corridor import config

    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", url)
    assert config.load().warehouse_url == url


def test_a_percent_encoded_password_reaches_dbt_as_libpq_reads_it(monkeypatch):
    """The message above tells to percent-encode: dbt (profiles.yml reads CORRIDOR_PG*) must then get the
    password, user and database libpq itself reads from the URL, not their encoded form."""
    from psycopg.conninfo import conninfo_to_dict

    from corridor import config, db

    url = "postgresql://etl%40corp:Hx7%25Qk2v%2F@DB.example:5433/corridor%2Dprod"
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", url)
    assert config.load().warehouse_url == url  # readable: refused neither for the case of the host nor the escapes
    libpq = conninfo_to_dict(url)
    env = db.dbt_env(url)
    assert (env["CORRIDOR_PGUSER"], env["CORRIDOR_PGPASSWORD"], env["CORRIDOR_PGDATABASE"]) == \
        (libpq["user"], libpq["password"], libpq["dbname"]) == ("etl@corp", "Hx7%Qk2v/", "corridor-prod")
