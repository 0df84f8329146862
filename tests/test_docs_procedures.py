"""README.md's operator procedures, followed as written on a real warehouse (Backfills and reruns)."""

from __future__ import annotations

import psycopg

from corridor.demo import generate
from corridor.ingest import ingest_feed
from tests.conftest import TEST_PII_KEY


def bank_ledger(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("select file_name, status from ops.load_ledger where feed = 'bank'"
                            " order by ledger_id").fetchall()


def test_a_rejected_file_is_tried_again_by_every_run_until_its_corrected_bytes_arrive_under_its_name(
        warehouse_url, tmp_path):
    """*A file was rejected*: it stays in the landing folder, and every run rejects it again (a new ledger row,
    a failed run); the source's corrected file under the same name (the only name a bank's month can have)
    loads, since a rejected name was never loaded."""
    landing = tmp_path / "landing"
    generate(landing, seed=7, scale="city", start="2021-01", end="2021-01")
    (first, *_) = sorted((landing / "bank").iterdir())
    good = first.read_bytes()
    header, _, body = good.decode("gb18030").partition("\n")
    first.write_bytes((header.replace("贷款编号", "编号", 1) + "\n" + body).encode("gb18030"))

    for run in (1, 2):
        summary = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
        assert [f.file_name for f in summary.rejected] == [first.name]
        assert bank_ledger(warehouse_url).count((first.name, "rejected")) == run

    first.write_bytes(good)  # the corrected file, under the rejected one's name
    summary = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert summary.rejected == []
    assert bank_ledger(warehouse_url)[-1] == (first.name, "loaded")
    with psycopg.connect(warehouse_url) as conn:
        (rows,) = conn.execute("select count(*) from raw.bank_loans r join ops.load_ledger l using (ledger_id)"
                               " where l.file_name = %s", (first.name,)).fetchone()
    assert rows > 0
