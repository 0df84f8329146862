"""Personal data in quarantine: a talent line that is not a JSON object is kept as masked text
(corridor.pii.mask_json_text), whatever way its exporter wrote the name and the ID number.

A JSON exporter that writes ASCII only (Python's json.dumps default, many Java and .NET serialisers) writes
a Chinese name as \\uXXXX escapes: the masking then has to read the escapes, not stop at the first backslash."""

from __future__ import annotations

import json

import psycopg

from corridor.ingest import ingest_feed
from corridor.normalize import id_check_char
from corridor.pii import mask_json_text
from tests.conftest import TEST_PII_KEY

ID = "33030319900101123" + id_check_char("33030319900101123")
NAME = "欧阳娜娜"
RECORD = {"record_id": "HR-X-1", "id_number": ID, "name": NAME, "category": "C", "title": "教授",
          "employer_name": "温州某科技有限公司", "employer_uscc": None, "area": "LW", "intake_date": "2021-02-12",
          "intake_type": "引进", "overseas": True, "team_id": None, "action": "new"}


def _leaks(masked: str) -> list[str]:
    """What of the name and ID number is in ``masked``, as written or with its JSON escapes read."""
    read = masked.encode("utf-8").decode("unicode_escape").encode("utf-16", "surrogatepass").decode(
        "utf-16", errors="replace")
    return [w for w in (NAME, NAME[1:], ID, ID[6:]) if w in masked or w in read]


def test_an_ascii_escaped_name_in_a_broken_line_is_masked():
    truncated = json.dumps(RECORD)[:-1]          # ensure_ascii: "name": "\u6b27\u9633\u5a1c\u5a1c"
    assert "\\u6b27\\u9633" in truncated
    masked = mask_json_text(truncated)
    assert _leaks(masked) == [], masked
    assert '"name": "欧***"' in masked and f'"id_number": "{ID[:6]}{"*" * 12}"' in masked
    assert '"record_id": "HR-X-1"' in masked      # the rest of the line is kept as it was


def test_escapes_in_a_name_or_id_number_are_read_before_masking():
    cases = {
        '{"name": "张\\"三丰"': '"name": "张***"',                      # an escaped quote inside the name
        '{"name": "\\u5f20\\u4e09", "id_number": 33030319900101123': '"name": "张*"',
        '{"id_number": "\\u0033\\u0033\\u0030303199001011234"}': '"id_number": "330303************"',
        '{"name": "\\ud83d\\ude00\\u4e09"': '"name": "😀*"',           # a surrogate pair is one character
        '{"name": "\\ud83d': '{"name": "*',                            # cut inside a pair: one character
        '{"name": "\\u5f20\\u4e': '{"name": "张*',                      # cut inside an escape: one character
    }
    for line, expected in cases.items():
        masked = mask_json_text(line)
        assert expected in masked, (line, masked)
        assert "三" not in masked and "\\u4e09" not in masked and "0303199001011234" not in masked, (line, masked)
        masked.encode("utf-8")  # storable: no lone surrogate


def test_a_name_and_id_number_written_plainly_are_masked_as_before():
    line = json.dumps(RECORD, ensure_ascii=False)[:-1]
    masked = mask_json_text(line)
    assert _leaks(masked) == [] and '"name": "欧***"' in masked
    assert mask_json_text('{"id_number": 330303199001011234, "name": \'张三\'') == \
        '{"id_number": 330303************, "name": \'张*\''


def test_a_talent_line_exported_ascii_only_keeps_no_name_in_quarantine(warehouse_url, tmp_path):
    """End to end: the exporter writes ASCII-only JSON; a broken line and a line that is a JSON array are
    quarantined, and ops.quarantine holds neither the name nor the ID number, escaped or not."""
    landing = tmp_path / "landing"
    (landing / "hr").mkdir(parents=True)
    good = json.dumps(RECORD)
    broken = json.dumps({**RECORD, "record_id": "HR-X-2"})[:-1]
    array = "[" + json.dumps({**RECORD, "record_id": "HR-X-3"}) + "]"
    (landing / "hr" / "talent_202102.jsonl").write_text("\n".join([good, broken, array]) + "\n", encoding="utf-8")
    summary = ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)
    assert not summary.rejected
    with psycopg.connect(warehouse_url) as conn:
        stored = conn.execute("select source_row, rule_code, message, record ->> 'line' from ops.quarantine"
                              " order by source_row").fetchall()
        everything = conn.execute("select coalesce(string_agg(q::text, ' '), '') from ops.quarantine q").fetchone()[0]
    assert [(row, rule) for row, rule, _, _ in stored] == [(2, "invalid_json"), (3, "invalid_json")]
    print(f"\nstored quarantine records: {[record[:160] for *_, record in stored]}")
    assert _leaks(everything) == []
    assert all(_leaks(message + line) == [] for _, _, message, line in stored)
    assert all("欧***" in record for *_, record in stored)


RENAMED = {"Name": NAME, "ID_Number": ID}  # an exporter that renamed its keys: every line fails the spec


def test_a_name_under_a_renamed_key_is_masked_in_a_record_and_in_a_broken_line():
    from corridor.feeds.hr import masked

    for record in ({**RECORD, "name": None, "Name": NAME}, {"record_id": "HR-X-1", "姓名": NAME, "身份证号": ID},
                   {"record_id": "HR-X-1", "name ": NAME, "ｉｄ＿ｎｕｍｂｅｒ": ID},
                   {"record_id": "HR-X-1", "person": {"Name": NAME, "id_no": ID}, "team": [{"姓名": NAME}]}):
        kept = json.dumps(masked(record), ensure_ascii=False)
        assert _leaks(kept) == [], kept
        assert "欧***" in kept and "HR-X-1" in kept, kept
        for ascii_only in (False, True):
            line = json.dumps(record, ensure_ascii=ascii_only)[:-1]  # broken: kept as masked text
            assert _leaks(mask_json_text(line)) == [], (line, mask_json_text(line))
    # other keys keep their values: only a person's name and ID number are masked
    assert masked({"title": "教授", "employer_name": "温州某科技有限公司", "username": "abc"}) == \
        {"title": "教授", "employer_name": "温州某科技有限公司", "username": "abc"}
    assert mask_json_text('{"title": "教授", "nickname": "abc"') == '{"title": "教授", "nickname": "abc"'


def test_a_talent_file_with_renamed_keys_keeps_no_name_in_quarantine(warehouse_url, tmp_path):
    """End to end: every line of a file whose exporter renamed name/id_number is quarantined (its id_number is
    blank); the quarantine keeps the renamed fields masked."""
    landing = tmp_path / "landing"
    (landing / "hr").mkdir(parents=True)
    lines = []
    for n, keys in enumerate((("Name", "ID_Number"), ("姓名", "身份证号码"), ("name ", "IdNumber")), start=1):
        record = {k: v for k, v in RECORD.items() if k not in ("name", "id_number")}
        lines.append(json.dumps({**record, "record_id": f"HR-R-{n}", keys[0]: NAME, keys[1]: ID},
                                ensure_ascii=n == 3))
    (landing / "hr" / "talent_202103.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)
    assert not summary.rejected
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute("select q.source_row, q.rule_code, q.record::text from ops.quarantine q"
                            " join ops.load_ledger l using (ledger_id) where l.file_name = 'talent_202103.jsonl'"
                            " order by q.source_row").fetchall()
    assert [row for row, _, _ in rows] == [1, 2, 3]
    for _, _, record in rows:
        assert _leaks(record) == [], record
        assert "欧***" in record, record
