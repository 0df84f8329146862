"""The whole city-scale demo set (2019-01..2022-12) through the loader, once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from corridor.demo import generate
from corridor.feeds import FEEDS
from corridor.ingest import ingest_feed
from corridor.verify import verify_manifest
from tests.conftest import TEST_PII_KEY


@pytest.fixture(scope="module")
def city(tmp_path_factory, module_warehouse_url) -> tuple[str, Path]:
    landing = tmp_path_factory.mktemp("city")
    generate(landing, scale="city")
    for feed in FEEDS:
        summary = ingest_feed(module_warehouse_url, feed, landing, pii_key=TEST_PII_KEY)
        assert not summary.rejected, summary.rejection_message()
    return module_warehouse_url, landing


def test_every_planted_dirty_record_is_caught(city):
    url, landing = city
    result = verify_manifest(url, landing, TEST_PII_KEY)
    assert result.checked > 500
    misses = [f"{e['file']} {e.get('sheet') or ''} row {e.get('row')} [{e['kind']}]: {why}"
              for e, why in result.misses]
    assert misses == [], "\n".join(misses[:30])
    assert result.caught == result.checked


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
    url, landing = city
    ids, names = _talent_identities(landing)
    assert len(ids) > 1000 and len(names) > 100
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            """
            select table_schema, table_name, column_name, data_type from information_schema.columns
            where table_schema not in ('pg_catalog', 'information_schema')
              and data_type in ('text', 'character varying', 'jsonb', 'json', 'ARRAY')
            """).fetchall()
        assert len(columns) > 30
        found_ids, found_names = [], []
        for schema, table, column, _ in columns:
            ref = sql.SQL("{}::text").format(sql.Identifier(column))
            source = sql.Identifier(schema, table)
            for (match,) in conn.execute(sql.SQL(
                    "select distinct m[1] from {}, regexp_matches({}, '([0-9]{{17}}[0-9Xx])', 'g') as m").format(
                    source, ref)):
                if match.upper() in ids:
                    found_ids.append((schema, table, column))
            hits = conn.execute(sql.SQL(
                "select count(*) from {} where {} = any(%s) or {} like any(%s)").format(
                source, sql.Identifier(column) if _ == "text" else ref, ref),
                (list(names), [f'%"{n}"%' for n in names])).fetchone()[0]
            if hits:
                found_names.append((schema, table, column, hits))
    assert found_ids == []
    assert found_names == []
