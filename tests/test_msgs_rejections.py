"""What a data engineer reads about a bad file, as the loader records it on real PostgreSQL.

Each case loads a bad file through ``ingest_feed`` and asserts the content
the message needs: the file, the row, what is wrong in words that say what
the file is, and (for a wrong encoding) what to do.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from corridor.ingest import ingest_feed
from tests.conftest import TEST_PII_KEY
from tests.test_parsers import (
    BANK_HEADERS,
    PLATFORM_HEADERS,
    TECH_HEADERS,
    contract,
    write_csv,
    write_district,
)


@pytest.fixture
def landing(tmp_path) -> Path:
    root = tmp_path / "landing"
    for feed in ("district", "techmarket", "bank", "hr"):
        (root / feed).mkdir(parents=True)
    return root


def ledger(url: str, feed: str) -> dict[str, tuple[str, str | None]]:
    """file name -> (status, message) of the feed's ledger rows."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("select file_name, status, message from ops.load_ledger where feed = %s", (feed,))
        return {name: (status, message) for name, status, message in rows}


def load(url: str, landing: Path, feed: str) -> dict[str, tuple[str, str | None]]:
    ingest_feed(url, feed, landing, pii_key=TEST_PII_KEY)
    return ledger(url, feed)


# -- a header without a column: the row, and what the header holds instead -----------------------

def test_csv_header_missing_a_column_names_row_1_and_the_unmatched_column(warehouse_url, landing):
    headers = [*TECH_HEADERS[:-1], "登记状况"]  # a typo for 登记状态
    write_csv(landing / "techmarket" / "tech_contracts_20210305.csv", headers, [contract()], "utf-8-sig")
    status, message = load(warehouse_url, landing, "techmarket")["tech_contracts_20210305.csv"]
    assert status == "rejected"
    assert message.startswith("tech_contracts_20210305.csv row 1: the header has no column 登记状态")
    assert "登记状况" in message  # what the header holds instead, so that the typo shows


def test_csv_header_of_another_delimiter_shows_what_the_header_holds(warehouse_url, landing):
    path = landing / "bank" / "WZB_202103.csv"
    path.write_bytes((";".join(BANK_HEADERS) + "\r\n").encode("gb18030"))
    status, message = load(warehouse_url, landing, "bank")["WZB_202103.csv"]
    assert status == "rejected" and message.startswith("WZB_202103.csv row 1: the header has no column 贷款编号")
    assert "贷款编号;借款人名称" in message


def test_xlsx_header_missing_a_column_shows_the_unmatched_column(warehouse_url, landing):
    write_district(landing / "district", headers={"创新平台": ["平台编号", "平台名", *PLATFORM_HEADERS[2:]]})
    status, message = load(warehouse_url, landing, "district")["LW_202103_v1.xlsx"]
    assert status == "rejected"
    assert message.startswith("LW_202103_v1.xlsx 创新平台 row 3: the header has no column 平台名称")
    assert "平台名" in message.removeprefix("LW_202103_v1.xlsx 创新平台 row 3: the header has no column 平台名称")
