"""What a data engineer reads about a bad file, as the loader records it on real PostgreSQL.

Each case loads a bad file through ``ingest_feed`` and asserts the content
the message needs: the file, the row, what is wrong in words that say what
the file is, and (for a wrong encoding) what to do.
"""

from __future__ import annotations

import json
import zipfile
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
    loan,
    talent,
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
    """file name -> (status, message) of the feed's ledger rows (a name's latest row)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("select file_name, status, message from ops.load_ledger where feed = %s"
                            " order by ledger_id", (feed,))
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


# -- a file in the other encoding: say so, and what to do ----------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_utf8_file_in_the_gb18030_feed_is_named_utf8(warehouse_url, landing, encoding):
    write_csv(landing / "bank" / "WZB_202103.csv", BANK_HEADERS, [loan()], encoding)
    status, message = load(warehouse_url, landing, "bank")["WZB_202103.csv"]
    assert status == "rejected" and message.startswith("WZB_202103.csv is not valid GB18030: byte 0x")
    assert "UTF-8" in message and "re-export" in message


def test_gb18030_file_in_a_utf8_feed_is_named_gb18030(warehouse_url, landing):
    write_csv(landing / "techmarket" / "tech_contracts_20210305.csv", TECH_HEADERS, [contract()], "gb18030")
    (landing / "hr" / "talent_202103.jsonl").write_bytes(json.dumps(talent(), ensure_ascii=False).encode("gb18030"))
    for feed, name in (("techmarket", "tech_contracts_20210305.csv"), ("hr", "talent_202103.jsonl")):
        status, message = load(warehouse_url, landing, feed)[name]
        assert status == "rejected" and message.startswith(f"{name} is not valid UTF-8: byte 0x"), message
        assert "GB18030" in message and "re-export" in message, message


def test_a_bad_byte_that_is_no_other_encoding_either_gets_no_guess(warehouse_url, landing):
    path = write_csv(landing / "bank" / "WZB_202103.csv", BANK_HEADERS, [loan()], "gb18030")
    path.write_bytes(path.read_bytes() + b'"\xff\xff"\r\n')
    status, message = load(warehouse_url, landing, "bank")["WZB_202103.csv"]
    assert status == "rejected" and "is not valid GB18030: byte 0xff" in message
    assert "UTF-8" not in message


# -- a file named .xlsx that is no workbook: say what it is --------------------------------------

def test_files_named_xlsx_that_are_no_workbook_say_what_they_are(warehouse_url, landing, tmp_path):
    folder = landing / "district"
    (folder / "LW_202103_v1.xlsx").write_text("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>")
    (folder / "OH_202103_v1.xlsx").write_bytes(b"")
    (folder / "YQ_202103_v1.xlsx").write_bytes(bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 1000)
    whole = write_district(tmp_path, "RA_202103_v1.xlsx").read_bytes()
    (folder / "RA_202103_v1.xlsx").write_bytes(whole[: len(whole) // 2])
    with zipfile.ZipFile(folder / "ZN_202103_v1.xlsx", "w") as archive:
        archive.writestr("readme.txt", "hello")
    rows = load(warehouse_url, landing, "district")
    assert {name: status for name, (status, _) in rows.items()} == dict.fromkeys(
        ["LW_202103_v1.xlsx", "OH_202103_v1.xlsx", "YQ_202103_v1.xlsx", "RA_202103_v1.xlsx", "ZN_202103_v1.xlsx"],
        "rejected")
    for name, (_, message) in rows.items():
        assert message.startswith(f"{name} is not a readable xlsx workbook: "), message
    assert "HTML" in rows["LW_202103_v1.xlsx"][1]
    assert "empty (0 bytes)" in rows["OH_202103_v1.xlsx"][1]
    assert "Excel 97-2003" in rows["YQ_202103_v1.xlsx"][1] and "save it as .xlsx" in rows["YQ_202103_v1.xlsx"][1]
    assert "truncated" in rows["RA_202103_v1.xlsx"][1]
    assert "truncated" not in rows["ZN_202103_v1.xlsx"][1]  # a whole zip, just not a workbook


# -- JSON Lines count lines, not rows ----------------------------------------------------------

def test_blank_lines_of_a_json_lines_file_are_noted_as_lines(warehouse_url, landing):
    lines = [json.dumps(talent(), ensure_ascii=False), "", "   "]
    (landing / "hr" / "talent_202103.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, message = load(warehouse_url, landing, "hr")["talent_202103.jsonl"]
    assert status == "loaded" and message == "talent_202103.jsonl: skipped 2 empty lines"


def test_a_talent_file_with_no_record_is_rejected_so_the_months_real_file_can_still_load(warehouse_url, landing):
    """A month's talent file has one name (talent_YYYYMM.jsonl). Loaded empty (a transfer cut short, 0 bytes or
    blank lines), it took that name: the real file sent after it was refused as "already loaded with different
    content", and the month's talents could never be loaded."""
    path = landing / "hr" / "talent_202103.jsonl"
    for empty in ("", "\n  \n"):
        path.write_text(empty, encoding="utf-8")
        status, message = load(warehouse_url, landing, "hr")["talent_202103.jsonl"]
        assert status == "rejected" and message.startswith("talent_202103.jsonl holds no record ("), message
        assert "deliver the month's file again" in message
    path.write_text(json.dumps(talent(), ensure_ascii=False) + "\n", encoding="utf-8")
    status, _ = load(warehouse_url, landing, "hr")["talent_202103.jsonl"]
    assert status == "loaded"
