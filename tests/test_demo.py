"""The demo data generator (corridor.demo): formats of shared/feeds/README.md, determinism,
planted dirt and its manifest, and the magnitudes of a city-scale set."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
import unicodedata
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from corridor import normalize
from corridor.demo import generate
from corridor.demo.ids import id_check_char, is_valid_id, is_valid_uscc, make_uscc, uscc_check_char
from corridor.feeds import AREAS, BANKS, FEEDS, file_meta
from corridor.feeds.base import RULES

SMALL = {"start": "2021-01", "end": "2021-03"}

TECH_HEADER = ["合同登记号", "登记日期", "合同名称", "合同类型", "技术领域", "卖方名称", "卖方统一社会信用代码",
               "卖方所属片区", "买方名称", "买方统一社会信用代码", "买方所在地", "合同成交额（万元）", "技术交易额（万元）",
               "登记状态"]
BANK_HEADER = ["贷款编号", "借款人名称", "借款人统一社会信用代码", "所属片区", "质押物类型", "质押登记号", "知识产权编号",
               "贷款金额（元）", "放款日期", "到期日期", "年利率（%）", "贷款状态", "报告期"]
HR_KEYS = ["record_id", "id_number", "name", "category", "title", "employer_name", "employer_uscc", "area",
           "intake_date", "intake_type", "overseas", "team_id", "action"]
DISTRICT_HEADERS = {
    "创新平台": ["平台编号", "平台名称", "平台类别", "级别", "认定日期", "依托单位", "依托单位统一社会信用代码", "变动类型",
             "孵化面积（平方米）"],
    "企业认定": ["统一社会信用代码", "企业名称", "认定类别", "证书编号", "认定日期", "有效期至", "变动类型"],
    "重点项目": ["项目编号", "项目名称", "项目类别", "所属区块", "开始日期", "计划完成日期", "状态", "累计完成投资（万元）",
             "形象进度（%）"],
}
# raw column (sql/raw.sql) -> position in the source record
COLUMNS = {
    "techmarket": {"registration_no": 0, "registration_date": 1, "contract_type": 3, "seller_uscc": 6,
                   "seller_area_code": 7, "buyer_uscc": 9, "contract_value_10k_yuan": 11,
                   "tech_value_10k_yuan": 12},
    "bank": {"loan_id": 0, "borrower_uscc": 2, "area_code": 3, "loan_amount_yuan": 7, "disbursed_date": 8,
             "due_date": 9, "loan_status": 11},
    "hr": {"record_id": "record_id", "person_key": "id_number", "category": "category",
           "employer_uscc": "employer_uscc", "area_code": "area", "intake_date": "intake_date"},
    "创新平台": {"platform_id": 0, "platform_category": 2, "recognised_date": 4, "host_uscc": 6,
             "incubation_area_m2": 8},
    "企业认定": {"uscc": 0, "certificate_no": 3, "granted_date": 4, "valid_until": 5},
    "重点项目": {"project_id": 0, "project_category": 2, "start_date": 4, "planned_completion_date": 5,
             "project_status": 6, "cumulative_investment_10k_yuan": 7},
}
AREA_NAMES = {"LW": ("龙湾区", "龙湾"), "OH": ("瓯海区", "瓯海"), "YQ": ("乐清市", "乐清"), "RA": ("瑞安市", "瑞安"),
              "ZN": ("浙南产业集聚区", "浙南"), "OJK": ("瓯江口产业集聚区", "瓯江口")}
AREA_OF = {n: code for code, names in AREA_NAMES.items() for n in (code, *names)}

REQUIRED_KINDS = {
    "area_short_form", "area_stray_spaces", "unknown_area", "uscc_lowercase", "uscc_spaces", "uscc_fullwidth",
    "uscc_bad_check", "id_lowercase_x", "id_bad_check", "date_slash", "date_dot", "date_chinese", "date_compact",
    "date_excel_serial", "number_thousands", "number_fullwidth", "number_unit_suffix", "missing_required",
    "negative_amount", "date_out_of_range", "total_row", "empty_row", "header_dirty", "duplicate_row_within_file",
    "duplicate_row_across_files", "tech_value_exceeds_contract", "invalid_json", "unknown_category",
    "duplicate_record_id", "restatement", "resent_identical",
}
KINDS_BY_FEED = {
    "district": {"uscc_lowercase", "uscc_spaces", "uscc_fullwidth", "uscc_bad_check", "date_slash", "date_dot",
                 "date_chinese", "date_compact", "date_excel_serial", "number_thousands", "number_fullwidth",
                 "number_unit_suffix", "missing_required", "negative_amount", "date_out_of_range", "total_row",
                 "empty_row", "header_dirty", "restatement", "resent_identical"},
    "techmarket": {"area_short_form", "area_stray_spaces", "unknown_area", "uscc_lowercase", "uscc_spaces",
                   "uscc_fullwidth", "uscc_bad_check", "date_slash", "date_dot", "date_chinese", "date_compact",
                   "number_thousands", "number_fullwidth", "number_unit_suffix", "missing_required",
                   "negative_amount", "date_out_of_range", "duplicate_row_within_file",
                   "duplicate_row_across_files", "tech_value_exceeds_contract", "contract_amended",
                   "contract_cancelled"},
    "bank": {"area_short_form", "area_stray_spaces", "unknown_area", "uscc_lowercase", "uscc_spaces",
             "uscc_fullwidth", "uscc_bad_check", "date_slash", "date_dot", "date_chinese", "date_compact",
             "number_thousands", "number_fullwidth", "number_unit_suffix", "missing_required", "negative_amount",
             "date_out_of_range"},
    "hr": {"area_short_form", "area_stray_spaces", "unknown_area", "uscc_lowercase", "uscc_spaces", "uscc_fullwidth",
           "uscc_bad_check", "id_lowercase_x", "id_bad_check", "date_slash", "date_dot", "date_chinese",
           "date_compact", "missing_required", "date_out_of_range", "invalid_json", "unknown_category",
           "duplicate_record_id", "talent_update", "talent_withdraw", "talent_same_person_twice"},
}
EXPECTS = {"quarantine", "normalise", "skip", "load_file", "supersede", "load"}


# -- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("small")
    generate(landing, **SMALL)
    return landing


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> tuple[Path, object, float]:
    landing = tmp_path_factory.mktemp("city")
    t0 = time.perf_counter()
    summary = generate(landing, scale="city")
    return landing, summary, time.perf_counter() - t0


@pytest.fixture(scope="module")
def city_files(city) -> dict:
    return read_landing(city[0])


def tree_hashes(landing: Path) -> dict[str, str]:
    return {str(p.relative_to(landing)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(landing.rglob("*")) if p.is_file()}


def manifest(landing: Path) -> list[dict]:
    with (landing / "_demo" / "manifest.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def read_landing(landing: Path) -> dict:
    """(feed, file name) -> rows by 1-based row number: csv lists, jsonl strings, xlsx {sheet: rows}."""
    out: dict = {}
    for feed in FEEDS:
        for path in sorted((landing / feed).iterdir()):
            if feed == "techmarket":
                out[feed, path.name] = [None, *csv.reader(io.StringIO(path.read_text("utf-8-sig"), newline=""))]
            elif feed == "bank":
                out[feed, path.name] = [None, *csv.reader(io.StringIO(path.read_bytes().decode("gb18030"),
                                                                      newline=""))]
            elif feed == "hr":
                out[feed, path.name] = [None, *path.read_text("utf-8").split("\n")[:-1]]
            else:
                wb = openpyxl.load_workbook(path, read_only=True)
                out[feed, path.name] = {ws.title: [None, *ws.iter_rows(values_only=True)] for ws in wb.worksheets}
                wb.close()
    return out


# -- determinism -----------------------------------------------------------------------

def test_same_seed_gives_byte_identical_files(tmp_path):
    generate(tmp_path / "a", **SMALL)
    generate(tmp_path / "b", **SMALL)
    a, b = tree_hashes(tmp_path / "a"), tree_hashes(tmp_path / "b")
    assert len(a) > 90
    assert a == b


def test_parallel_generation_gives_the_same_bytes(tmp_path, small):
    generate(tmp_path, workers=2, **SMALL)
    assert tree_hashes(tmp_path) == tree_hashes(small)


def test_different_seed_gives_different_files(tmp_path, small):
    generate(tmp_path, seed=7, **SMALL)
    a, b = tree_hashes(small), tree_hashes(tmp_path)
    common = a.keys() & b.keys()
    assert len(common) > 50
    assert sum(a[k] == b[k] for k in common) == 0


def test_generating_again_replaces_the_previous_set(tmp_path):
    generate(tmp_path, seed=7, **SMALL)
    first = tree_hashes(tmp_path)
    generate(tmp_path, **SMALL)
    generate(tmp_path, seed=7, **SMALL)
    assert tree_hashes(tmp_path) == first


def test_feed_files_that_are_not_a_demo_set_are_never_overwritten(tmp_path):
    (tmp_path / "bank").mkdir()
    delivered = tmp_path / "bank" / "ICBC_202101.csv"
    delivered.write_bytes(b"real delivery")
    with pytest.raises(FileExistsError, match="not a demo set"):
        generate(tmp_path, **SMALL)
    assert delivered.read_bytes() == b"real delivery"


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        generate(tmp_path, scale="galactic")
    with pytest.raises(ValueError, match="before"):
        generate(tmp_path, start="2021-03", end="2021-01")
    with pytest.raises(ValueError, match="month"):
        generate(tmp_path, start="2021-13")
    with pytest.raises(ValueError, match="2015"):
        generate(tmp_path, start="2014-12")


# -- file names and formats -----------------------------------------------------------------

def test_files_are_named_per_the_feed_patterns(small):
    names = {feed: sorted(p.name for p in (small / feed).iterdir()) for feed in FEEDS}
    for feed, files in names.items():
        for name in files:
            file_meta(feed, name)  # raises on a bad name
    months = ("202101", "202102", "202103")
    v1 = {n for n in names["district"] if n.endswith("_v1.xlsx")}
    assert v1 == {f"{a}_{m}_v1.xlsx" for a in AREAS for m in months}
    assert set(names["bank"]) == {f"{b}_{m}.csv" for b in BANKS for m in months}
    assert names["hr"] == [f"talent_{m}.jsonl" for m in months]
    days = [file_meta("techmarket", n).period_start for n in names["techmarket"]]
    assert all(d.weekday() < 5 for d in days)
    assert date(2021, 2, 12) not in days  # Spring Festival: no export
    assert 50 <= len(days) <= 62


def test_techmarket_csv_is_utf8_with_bom_quoted_with_the_spec_header(small):
    for path in sorted((small / "techmarket").iterdir()):
        data = path.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf")
        text = data.decode("utf-8-sig")
        lines = text.split("\r\n")
        assert lines[-1] == "" and all("\n" not in line for line in lines)
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert rows[0] == TECH_HEADER
        assert lines[0] == ",".join(f'"{h}"' for h in TECH_HEADER)
        assert all(len(r) == len(TECH_HEADER) for r in rows)
        assert all(line.startswith('"') and line.endswith('"') for line in lines[:-1])


def test_bank_csv_is_gb18030_not_utf8(small):
    for path in sorted((small / "bank").iterdir()):
        data = path.read_bytes()
        text = data.decode("gb18030")
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert rows[0] == BANK_HEADER
        assert all(r[12] == path.stem.split("_")[1] for r in rows[1:])


def test_some_bank_names_need_gb18030_beyond_gbk(city):
    landing = city[0]
    beyond_gbk = 0
    for path in sorted((landing / "bank").iterdir()):
        try:
            path.read_bytes().decode("gbk")
        except UnicodeDecodeError:
            beyond_gbk += 1
    assert beyond_gbk >= 1


def test_district_workbook_has_cover_title_notes_header(small):
    path = small / "district" / "OH_202102_v1.xlsx"
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["封面", "创新平台", "企业认定", "重点项目"]
    cover = {r[0]: r[1] for r in wb["封面"].iter_rows(values_only=True)}
    assert list(cover) == ["填报单位", "报告期", "填报人", "联系电话", "报送日期"]
    assert cover["填报单位"] == "瓯海区" and cover["报告期"] == "2021年02月"
    assert re.fullmatch(r"1[3-9]\d{9}", cover["联系电话"])
    assert cover["报送日期"].date() > date(2021, 2, 28)
    for sheet, header in DISTRICT_HEADERS.items():
        ws = wb[sheet]
        width = len(header)
        last = "ABCDEFGHI"[width - 1]
        assert {f"A1:{last}1", f"A2:{last}2"} <= {str(r) for r in ws.merged_cells.ranges}
        assert ws["A1"].value == "瓯海区环大罗山科创走廊月度报表（2021年02月）"
        assert ws["A2"].value.startswith("填报说明：")
        assert [c.value for c in ws[3]][:width] == header
    projects = [r for r in wb["重点项目"].iter_rows(min_row=4, values_only=True) if r[0] and r[0] != "合计"]
    assert len(projects) > 10
    assert all(re.fullmatch(r"OH-X-\d{4}", r[0]) for r in projects)
    assert sum(hasattr(r[4], "year") for r in projects) > len(projects) * 0.8  # real Excel dates mostly


def test_xlsx_properties_carry_no_clock_time(small):
    wb = openpyxl.load_workbook(small / "district" / "LW_202103_v1.xlsx")
    assert wb.properties.created.date() > date(2021, 3, 31)
    assert wb.properties.created.date() < date(2021, 5, 1)


def test_hr_lines_carry_the_spec_keys_and_valid_ids(small):
    planted = {(e["file"], e["row"]) for e in manifest(small) if e["feed"] == "hr" and e["expect"] != "load"}
    for path in sorted((small / "hr").iterdir()):
        for n, line in enumerate(path.read_text("utf-8").split("\n")[:-1], start=1):
            if (path.name, n) in planted:
                continue
            obj = json.loads(line)
            assert list(obj) == HR_KEYS
            assert is_valid_id(obj["id_number"]) and obj["id_number"].startswith("3303")
            assert 1940 < int(obj["id_number"][6:10]) < 2000
            assert obj["category"] in "ABCDE" and obj["area"] in AREAS
            assert obj["action"] in ("new", "update", "withdraw")
            assert date.fromisoformat(obj["intake_date"]) <= date(2021, 3, 31)
            assert obj["employer_uscc"] is None or is_valid_uscc(obj["employer_uscc"])


def test_check_characters_agree_with_the_spec_examples_and_normalize():
    assert id_check_char("11010519491231002") == "X"   # the GB 11643-1999 example
    assert uscc_check_char("91350100M000100Y4") == "3"  # a published USCC
    for n in range(500):
        code = make_uscc("91330303", n, 12345)
        assert normalize.uscc_check_char(code[:17]) == code[17]
    for body in ("33030319900101123", "33030419851231004", "33038120011111999"):
        assert normalize.id_check_char(body) == id_check_char(body)


# -- the manifest -------------------------------------------------------------------------

def _loads(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def _num(text: str) -> Decimal:
    return Decimal(unicodedata.normalize("NFKC", text).replace(",", ""))


def _cells(files: dict, e: dict):
    """The planted record: a list (csv), a string (jsonl line) or a tuple (xlsx row)."""
    rows = files[e["feed"], e["file"]]
    if e["feed"] == "district":
        rows = rows[e["sheet"]]
    assert 1 <= e["row"] < len(rows), f"{e['file']} has no row {e['row']}"
    return rows[e["row"]]


def _cell(files: dict, e: dict, column: str):
    cells = _cells(files, e)
    if e["feed"] == "hr":
        return json.loads(cells)[COLUMNS["hr"][column]]
    return cells[COLUMNS[e["sheet"] or e["feed"]][column]]


def _date_text_means(kind: str, cell, iso: str) -> bool:
    d = date.fromisoformat(iso)
    return cell == {"date_slash": f"{d.year}/{d.month}/{d.day}", "date_dot": f"{d.year}.{d.month}.{d.day}",
                    "date_chinese": f"{d.year}年{d.month}月{d.day}日", "date_compact": f"{d:%Y%m%d}",
                    "date_excel_serial": (d - date(1899, 12, 30)).days}[kind]


def check_normalise(files: dict, e: dict) -> None:
    kind, value, cell = e["kind"], e["value"], _cell(files, e, e["column"])
    assert cell != value, "a planted value must differ from its normalised form"
    if kind == "uscc_lowercase":
        assert cell == value.lower() and is_valid_uscc(value)
    elif kind == "uscc_spaces":
        assert cell.strip() == value and is_valid_uscc(value)
    elif kind == "uscc_fullwidth":
        assert unicodedata.normalize("NFKC", cell) == value and is_valid_uscc(value)
    elif kind == "area_short_form":
        assert AREA_OF[cell] == value and cell != AREA_NAMES[value][0]
    elif kind == "area_stray_spaces":
        assert AREA_OF[cell.strip()] == value
    elif kind == "id_lowercase_x":
        assert cell.endswith("x") and cell.upper() == value and is_valid_id(value)
    elif kind.startswith("date_"):
        assert _date_text_means(kind, cell, value)
    elif kind == "number_thousands":
        assert "," in cell and _num(cell) == Decimal(value)
    elif kind == "number_fullwidth":
        assert cell != unicodedata.normalize("NFKC", cell) and _num(cell) == Decimal(value)
    elif kind == "number_unit_suffix":
        unit = re.search(r"(万元|元|㎡)$", cell).group(1)
        factor = 10_000 if unit == "万元" and e["column"] == "loan_amount_yuan" else 1
        assert _num(cell[: -len(unit)]) * factor == Decimal(value)
    else:
        raise AssertionError(f"unchecked kind {kind}")


def check_quarantine(files: dict, e: dict, earlier_lines: dict) -> None:
    kind, cells = e["kind"], _cells(files, e)
    assert e["rule"] in RULES
    if kind == "unknown_area":
        column = {"techmarket": "seller_area_code", "bank": "area_code", "hr": "area_code"}[e["feed"]]
        assert _cell(files, e, column).strip() not in AREA_OF
    elif kind == "uscc_bad_check":
        column = e.get("column") or {"techmarket": "seller_uscc", "bank": "borrower_uscc", "hr": "employer_uscc",
                                     "创新平台": "host_uscc", "企业认定": "uscc"}[e["sheet"] or e["feed"]]
        code = _cell(files, e, column)
        assert len(code) == 18 and not is_valid_uscc(code)
    elif kind == "id_bad_check":
        code = json.loads(cells)["id_number"]
        assert len(code) == 18 and not is_valid_id(code)
    elif kind == "missing_required":
        value = json.loads(cells)[e["column"]] if e["feed"] == "hr" else _cell(files, e, e["column"])
        assert value in (None, "")
    elif kind == "negative_amount":
        assert any(isinstance(c, str) and c.startswith("-") or isinstance(c, int | float) and c < 0 for c in cells)
    elif kind == "date_out_of_range":
        d = date.fromisoformat(e["value"])
        assert d < date(2015, 1, 1) or d > file_meta(e["feed"], e["file"]).period_end
        flat = [c.date().isoformat() if hasattr(c, "date") else c for c in
                (json.loads(cells).values() if e["feed"] == "hr" else cells)]
        assert e["value"] in flat
    elif kind == "total_row":
        assert cells[0] == "合计"
    elif kind == "tech_value_exceeds_contract":
        assert Decimal(cells[12]) > Decimal(cells[11])
    elif kind == "duplicate_row_within_file":
        rows = files[e["feed"], e["file"]]
        assert cells in rows[2:e["row"]]
    elif kind == "duplicate_row_across_files":
        assert tuple(cells) in earlier_lines[e["file"]]
    elif kind == "invalid_json":
        try:
            assert not isinstance(json.loads(cells), dict)
        except json.JSONDecodeError:
            pass
    elif kind == "unknown_category":
        assert json.loads(cells)["category"] not in ("A", "B", "C", "D", "E")
    elif kind == "duplicate_record_id":
        rid = json.loads(cells)["record_id"]
        earlier = files[e["feed"], e["file"]][1:e["row"]]
        assert any(isinstance(o := _loads(line), dict) and o.get("record_id") == rid for line in earlier)
    else:
        raise AssertionError(f"unchecked kind {kind}")


def check_manifest(landing: Path, files: dict) -> Counter:
    entries = manifest(landing)
    # techmarket lines of all earlier files, for duplicates across files
    earlier_lines: dict[str, set] = {}
    seen: set = set()
    for (feed, name), rows in sorted(files.items()):
        if feed == "techmarket":
            earlier_lines[name] = set(seen)
            seen.update(tuple(r) for r in rows[2:])
    kinds: Counter = Counter()
    for e in entries:
        assert e["expect"] in EXPECTS, e
        assert (landing / e["feed"] / e["file"]).is_file(), e
        kinds[e["kind"]] += 1
        if e["expect"] == "normalise":
            check_normalise(files, e)
        elif e["expect"] == "quarantine":
            check_quarantine(files, e, earlier_lines)
        elif e["expect"] == "skip":
            assert all(c is None for c in _cells(files, e))
        elif e["expect"] == "load":
            cells = _cells(files, e)
            key = json.loads(cells)["record_id"] if e["feed"] == "hr" else \
                cells[3] if e.get("sheet") == "企业认定" else cells[0]
            assert key == e["key"]
        elif e["expect"] == "supersede" and e["kind"] == "resent_identical":  # a version with v1's bytes
            assert e["row"] is None and e["same_as"] == e["supersedes"] and not e["corrections"]
            assert (landing / "district" / e["file"]).read_bytes() == (landing / "district" / e["same_as"]).read_bytes()
        elif e["expect"] == "supersede":
            assert e["row"] is None and e["corrections"]
            old, new = files["district", e["supersedes"]], files["district", e["file"]]
            assert {s: r[4:] for s, r in old.items() if s != "封面"} != {s: r[4:] for s, r in new.items() if s != "封面"}
        elif e["expect"] == "load_file":
            header = [c for c in _cells(files, e) if c is not None]
            expected = DISTRICT_HEADERS[e["sheet"]]
            assert header != expected
            assert [re.sub(r"\s", "", unicodedata.normalize("NFKC", h)) for h in header] == \
                [unicodedata.normalize("NFKC", h) for h in expected]
    return kinds


def test_manifest_lines_point_at_the_planted_records(small):
    kinds = check_manifest(small, read_landing(small))
    assert sum(kinds.values()) > 60


def test_manifest_lines_of_the_city_set_point_at_the_planted_records(city, city_files):
    kinds = check_manifest(city[0], city_files)
    assert sum(kinds.values()) > 1500


def test_every_dirty_kind_is_planted_in_every_feed_it_applies_to(city):
    entries = manifest(city[0])
    by_feed = defaultdict(set)
    for e in entries:
        by_feed[e["feed"]].add(e["kind"])
    assert REQUIRED_KINDS <= set().union(*by_feed.values())
    for feed, kinds in KINDS_BY_FEED.items():
        assert kinds <= by_feed[feed], f"{feed} lacks {sorted(kinds - by_feed[feed])}"
    # the spec's examples: 50万元 in the bank's yuan column, ㎡ in 孵化面积
    assert any(e["kind"] == "number_unit_suffix" and e["value"] == "500000" for e in entries if e["feed"] == "bank")
    assert any(e["kind"] == "number_unit_suffix" and e["column"] == "incubation_area_m2"
               for e in entries if e["feed"] == "district")
    # quarantine lines name the rule the parsers use; normalise lines say where and what
    for e in entries:
        if e["expect"] == "quarantine":
            assert e["rule"] in RULES
        if e["expect"] == "normalise":
            assert e["table"].startswith("raw.") and e["column"] and isinstance(e["value"], str)


def test_dirty_records_appear_in_every_year_of_every_feed(city):
    years = defaultdict(set)
    for e in manifest(city[0]):
        if e["expect"] in ("quarantine", "normalise", "skip"):
            years[e["feed"]].add(re.search(r"(20\d\d)", e["file"]).group(1))
    assert dict(years) == {f: {"2019", "2020", "2021", "2022"} for f in FEEDS}


def test_dirty_share_of_every_feed_is_between_2_and_5_percent(city, city_files):
    landing, summary, _ = city
    noop = {e["file"] for e in manifest(landing) if e.get("same_as")}  # v1's rows again
    rows: Counter = Counter()
    for (feed, name), content in city_files.items():
        if name in noop:
            continue
        if feed == "district":
            rows[feed] += sum(len(r) - 4 for s, r in content.items() if s != "封面")
        else:
            rows[feed] += len(content) - (2 if feed != "hr" else 1)
    dirty = Counter(e["feed"] for e in manifest(landing) if e["expect"] in ("quarantine", "normalise", "skip"))
    for feed in FEEDS:
        assert rows[feed] == summary.rows[feed]
        assert dirty[feed] == summary.dirty_rows[feed]
        assert 0.02 <= dirty[feed] / rows[feed] <= 0.05, feed


def test_summary_json_is_the_returned_summary(city):
    landing, summary, _ = city
    saved = json.loads((landing / "_demo" / "summary.json").read_text("utf-8"))
    assert saved["files"] == summary.files and saved["rows"] == summary.rows
    assert saved["dirty"] == summary.dirty
    assert summary.files == {f: len(list((landing / f).iterdir())) for f in FEEDS}
    assert saved["manifest_lines"] == len(manifest(landing))


# -- business realism at city scale -----------------------------------------------------

def test_city_magnitudes_per_year_are_those_of_the_spec(city, city_files):
    landing, summary, _ = city
    contracts, loans, talents, teams = Counter(), Counter(), Counter(), defaultdict(set)
    seen_regno, seen_loan = set(), set()
    for (feed, _name), content in sorted(city_files.items()):
        if feed == "techmarket":
            for r in content[2:]:
                if r[0] not in seen_regno:
                    seen_regno.add(r[0])
                    contracts[r[0][:4]] += 1
        elif feed == "bank":
            for r in content[2:]:
                if r[0] not in seen_loan and r[11] == "正常":  # loan ids carry the bank's prefix
                    seen_loan.add(r[0])
                    loans[r[0][4:8]] += 1
        elif feed == "hr":
            for line in content[1:]:
                try:
                    obj = json.loads(line)
                    d = date.fromisoformat(obj["intake_date"])
                except (ValueError, TypeError, AttributeError):
                    continue
                if obj["action"] == "new":
                    talents[d.year] += 1
                    if obj["team_id"]:
                        teams[d.year].add(obj["team_id"])
    for y in (2019, 2020, 2021, 2022):
        per_year = summary.per_year[str(y)]
        assert 5_000 <= contracts[str(y)] <= 8_000, (y, contracts[str(y)])
        assert 250 <= per_year["ht_new"] <= 400, y
        assert 1_000 <= per_year["sme_new"] <= 1_500, y
        assert 600 <= talents[y] <= 1_000, (y, talents[y])
        assert 300 <= loans[str(y)] <= 600, (y, loans[str(y)])
        assert 30 <= per_year["platform_events"] <= 60, y
        assert 50 <= per_year["projects_new"] <= 100, y
        assert 7 <= len(teams[y]) <= 14, y
    assert contracts["2022"] > contracts["2019"] * 1.2


def test_kpi_preview_lands_near_the_plan_targets(city):
    k = city[1].kpi_preview
    end = k["district_as_of_end"]
    assert 15 <= end["K01"] <= 30 and 700 <= end["K04"] <= 1100 and 2_800 <= end["K05"] <= 4_500
    assert 7 <= end["K07"] <= 14 and 3 <= end["K08"] <= 6 and 80 <= end["K09"] <= 140
    assert 1_700 <= k["K06_distinct_talents_since_2020"] <= 2_800
    assert all(0.15 <= g <= 0.5 for g in k["K03_growth"]["ALL"].values())
    assert len({round(g["2022"], 2) for a, g in k["K03_growth"].items() if a != "ALL"}) > 3  # areas differ


def test_restatements_differ_and_resent_workbooks_are_identical(city):
    landing = city[0]
    entries = manifest(landing)
    restated = [e for e in entries if e["kind"] == "restatement"]
    resent = [e for e in entries if e["kind"] == "resent_identical"]
    assert len(restated) >= 5 and any(e["file"].endswith("_v3.xlsx") for e in restated) and resent
    for e in restated:
        assert (landing / "district" / e["file"]).read_bytes() != (landing / "district" / e["supersedes"]).read_bytes()


def test_certificates_and_projects_are_consistent(city, city_files):
    entries = manifest(city[0])
    planted = {(e["file"], e["sheet"], e["row"]) for e in entries if e["expect"] != "load"}
    noop = {e["file"] for e in entries if e.get("same_as")}  # v1 again: its planted records are v1's
    latest: dict[str, str] = {}  # area-month -> the file of its latest (restated) version
    for name in sorted((n for f, n in city_files if f == "district" and n not in noop),
                       key=lambda n: (n[:-8], int(n[-6]))):
        latest[name[:-8]] = name
    certs, projects = {}, defaultdict(list)
    for name in sorted(latest.values()):
        sheets = city_files["district", name]
        for n, r in enumerate(sheets["企业认定"][4:], start=4):
            if (name, "企业认定", n) in planted:
                continue
            if r and r[2] == "高新技术企业" and r[6] == "新增":
                assert re.fullmatch(r"GR\d{4}33\d{6}", r[3]) and r[3][2:6] == str(r[4].year)
                assert r[5].date() == r[4].date().replace(year=r[4].year + 3) - timedelta(days=1)
                assert r[4].date() <= file_meta("district", name).period_end
                certs[r[3]] = r
        for n, r in enumerate(sheets["重点项目"][4:], start=4):
            if r and (name, "重点项目", n) not in planted:
                projects[r[0]].append((name.split("_")[1], r[6], r[7]))
    assert len(certs) > 800
    assert len(projects) > 300
    order = {"谋划": 0, "在建": 1, "完成": 2, "终止": 2}
    for rows in projects.values():
        rows.sort()
        statuses = [order[s] for _, s, _ in rows]
        assert statuses == sorted(statuses)
        assert sum(s == 2 for s in statuses) <= 1
        invested = [i for _, _, i in rows]
        assert invested == sorted(invested)  # cumulative investment never falls


def test_contract_changes_and_talent_scenarios_reuse_their_keys(city, city_files):
    landing = city[0]
    first_seen: dict[str, str] = {}
    for (feed, name), content in sorted(city_files.items()):
        if feed == "techmarket":
            for r in content[2:]:
                first_seen.setdefault(r[0], name)
    for e in manifest(landing):
        if e["kind"] in ("contract_amended", "contract_cancelled"):
            assert first_seen[e["key"]] < e["file"]
            row = city_files["techmarket", e["file"]][e["row"]]
            assert row[13] == {"contract_amended": "变更", "contract_cancelled": "撤销"}[e["kind"]]
    lines = {}
    for (feed, name), content in sorted(city_files.items()):
        if feed == "hr":
            for n, line in enumerate(content[1:], start=1):
                lines[name, n] = line
    ids_by_person = defaultdict(set)
    for text in lines.values():
        try:
            obj = json.loads(text)
            ids_by_person[str(obj["id_number"]).upper()].add(obj["record_id"])
        except (ValueError, TypeError, KeyError):
            continue
    twice = [json.loads(lines[e["file"], e["row"]]) for e in manifest(landing)
             if e["kind"] == "talent_same_person_twice"]
    assert twice and all(len(ids_by_person[t["id_number"]]) == 2 for t in twice)
    withdrawn = [json.loads(lines[e["file"], e["row"]]) for e in manifest(landing) if e["kind"] == "talent_withdraw"]
    assert withdrawn and all(w["action"] == "withdraw" for w in withdrawn)


# -- scales --------------------------------------------------------------------------------

def test_province_scale_multiplies_rows_not_files(tmp_path):
    city = generate(tmp_path / "city", start="2021-05", end="2021-05", feeds=("bank", "hr"))
    province = generate(tmp_path / "province", scale="province", start="2021-05", end="2021-05",
                        feeds=("bank", "hr"))
    for feed in ("bank", "hr"):
        assert sorted(p.name for p in (tmp_path / "city" / feed).iterdir()) == \
            sorted(p.name for p in (tmp_path / "province" / feed).iterdir())
        assert 12 <= province.rows[feed] / city.rows[feed] <= 30
