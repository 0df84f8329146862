"""The whole city-scale demo set (2019-01..2022-12) through the loader, once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from corridor.verify import verify_manifest
from tests.conftest import TEST_PII_KEY, data_rows


@pytest.fixture(scope="module")
def city(built_warehouse) -> tuple[str, Path]:
    """The city demo set, ingested (and built by dbt: the personal-data scan covers every schema)."""
    return built_warehouse.url, built_warehouse.landing


def test_every_planted_dirty_record_is_caught(city):
    url, landing = city
    result = verify_manifest(url, landing, TEST_PII_KEY)
    assert result.checked > 500
    misses = [f"{e['file']} {e.get('sheet') or ''} row {e.get('row')} [{e['kind']}]: {why}"
              for e, why in result.misses]
    assert misses == [], "\n".join(misses[:30])
    assert result.caught == result.checked
    # and the other way round: no clean record quarantined (it would be missing from every number)
    assert result.quarantined > 500 and result.unplanted == [], result.unplanted[:10]


def test_a_clean_record_quarantined_is_named_by_the_verification(built_warehouse, warehouse_copy):
    """A loaded record of a demo file moved to the quarantine (as a reader refusing a clean value would):
    the verification names its file, sheet, row and rule, and fails."""
    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        ledger_id, file_name, row = conn.execute(
            "select c.ledger_id, l.file_name, c.source_row from raw.district_certifications as c"
            " join ops.load_ledger as l using (ledger_id) order by c.ledger_id, c.source_row limit 1").fetchone()
        conn.execute("delete from raw.district_certifications where ledger_id = %s and source_row = %s",
                     (ledger_id, row))
        conn.execute("insert into ops.quarantine (ledger_id, feed, file_name, sheet, source_row, rule_code, message,"
                     " record) values (%s, 'district', %s, '企业认定', %s, 'invalid_value', 'a clean value refused',"
                     " '{}')", (ledger_id, file_name, row))
    result = verify_manifest(warehouse_copy, built_warehouse.landing, TEST_PII_KEY)
    assert not result.ok
    assert result.unplanted == [("district", file_name, "企业认定", row, "invalid_value", "a clean value refused")]


def test_received_equals_loaded_plus_quarantined_for_every_file(city):
    url, _ = city
    with psycopg.connect(url) as conn:
        bad = conn.execute(
            """
            select l.file_name, l.rows_received, l.rows_loaded, l.rows_quarantined, count(q.*)
            from ops.load_ledger as l
            left join ops.quarantine as q on q.ledger_id = l.ledger_id
            group by l.ledger_id
            having l.rows_received <> l.rows_loaded + l.rows_quarantined
                or l.rows_quarantined <> count(q.*)
            """).fetchall()
        files = conn.execute("select count(*) from ops.load_ledger").fetchone()[0]
    assert files > 1000
    assert bad == []


def test_rows_received_are_the_files_data_rows_counted_without_the_loader(city):
    """rows received = loaded + quarantined holds per file (above); here "received" itself is checked against the
    file: a reader that skipped a row without a word would pass the sum, not this."""
    url, landing = city
    with psycopg.connect(url) as conn:
        ledger = conn.execute("select feed, file_name, rows_received, message from ops.load_ledger"
                              " order by ledger_id").fetchall()
    differ, same_bytes = [], 0
    for feed, name, received, message in ledger:
        counted = data_rows(feed, landing / feed / name)
        # a district _v2 with _v1's bytes is a restatement: loaded, its rows received again
        same_bytes += bool(message and message.startswith("a restatement with the bytes of "))
        if counted != received:
            differ.append(f"{feed}/{name}: {counted} data rows in the file, {received} received")
    assert len(ledger) > 1000 and same_bytes > 0
    assert differ == [], "\n".join(differ[:20])


def test_loaded_rows_match_the_ledger(city):
    """The ledger's rows_loaded is what the raw tables hold for that file."""
    url, _ = city
    tables = ["district_platforms", "district_certifications", "district_projects",
              "techmarket_contracts", "bank_loans", "hr_talents"]
    union = sql.SQL(" union all ").join(
        sql.SQL("select ledger_id from {}").format(sql.Identifier("raw", t)) for t in tables)
    with psycopg.connect(url) as conn:
        bad = conn.execute(sql.SQL(
            "select l.file_name from ops.load_ledger as l left join ({}) as r using (ledger_id)"
            " group by l.ledger_id having l.rows_loaded <> count(r.ledger_id)").format(union)).fetchall()
    assert bad == []


def _talent_identities(landing: Path) -> tuple[set[str], set[str]]:
    ids, names = set(), set()
    for path in (landing / "hr").glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                ids.update(re.findall(r"\d{17}[\dXx]", line))
                names.update(re.findall(r'"name"\s*:\s*"([^"]+)"', line))
                continue
            if isinstance(obj, dict):
                if obj.get("id_number"):
                    ids.add(str(obj["id_number"]).strip().upper())
                if obj.get("name"):
                    names.add(str(obj["name"]).strip())
    return ids, names


def test_no_resident_id_or_talent_name_is_stored_anywhere(city):
    """Every text, json and array column of every table in every schema: no ID number, no name.

    Views are not scanned: they hold nothing their base tables do not.
    """
    url, landing = city
    ids, names = _talent_identities(landing)
    assert len(ids) > 1000 and len(names) > 100
    quoted = [f'"{n}"' for n in names] + [f'\\"{n}\\"' for n in names]
    found = []
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            """
            select c.table_schema, c.table_name, c.column_name, c.data_type
            from information_schema.columns as c
            join information_schema.tables as t using (table_schema, table_name)
            where t.table_type = 'BASE TABLE'
              and c.table_schema not in ('pg_catalog', 'information_schema')
              and c.data_type in ('text', 'character varying', 'jsonb', 'json', 'ARRAY')
            """).fetchall()
        assert {c[0] for c in columns} >= {"raw", "ops", "marts", "kpi"}
        for schema, table, column, data_type in columns:
            source, col = sql.Identifier(schema, table), sql.Identifier(column)
            as_text = sql.SQL("{}::text").format(col)
            for (match,) in conn.execute(sql.SQL(
                    "select distinct m[1] from {}, regexp_matches({}, '([0-9]{{17}}[0-9Xx])', 'g') as m").format(
                    source, as_text)):
                if match.upper() in ids:
                    found.append((schema, table, column, "id number"))
            if data_type in ("text", "character varying"):
                hits = conn.execute(sql.SQL("select count(*) from {} where {} = any(%s)").format(source, col),
                                    (list(names),)).fetchone()[0]
            else:
                texts = [r[0] for r in conn.execute(sql.SQL("select {} from {}").format(as_text, source))]
                hits = sum(1 for text in texts if text and any(q in text for q in quoted))
            if hits:
                found.append((schema, table, column, f"{hits} names"))
    assert found == []
