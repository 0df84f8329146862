"""The four feed parsers on small files built in the exact formats of shared/feeds/README.md.

Every dirty case of the spec is either normalised or quarantined with its
rule, row and a message naming file, row, column and rule; unreadable files
are rejected. No database needed.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

import corridor
from corridor.feeds import bank, district, hr, techmarket
from corridor.feeds.base import FileRejected, ParsedFile, Quarantined
from corridor.normalize import id_check_char, uscc_check_char
from corridor.pii import person_key

KEY = b"test-pii-key-not-a-secret"


def valid_uscc(body: str) -> str:
    return body + uscc_check_char(body)


def valid_id(body: str) -> str:
    return body + id_check_char(body)


USCC_HOST = valid_uscc("91330300MA2AB1C2D")
USCC_FIRM = valid_uscc("91330301MA2CD3E4F")
USCC_BUYER = valid_uscc("91110108MA0012345")
ID_NUMBER = valid_id("33030319900101123")
NAME = "欧阳娜娜"


def the_one(parsed: ParsedFile) -> Quarantined:
    assert len(parsed.quarantined) == 1, [q.message for q in parsed.quarantined]
    return parsed.quarantined[0]


def assert_reconciles(parsed: ParsedFile) -> None:
    assert parsed.rows_received == parsed.rows_loaded + len(parsed.quarantined)


def raw_columns() -> dict[str, set[str]]:
    """The columns of each raw table in sql/raw.sql, without ledger_id."""
    ddl = (Path(corridor.__file__).parent / "sql" / "raw.sql").read_text()
    tables = {}
    for m in re.finditer(r"create table if not exists (raw\.\w+) \((.*?)\n\);", ddl, re.S):
        columns = {line.split()[0] for line in m[2].splitlines() if line.strip() and not line.strip().startswith("--")}
        tables[m[1]] = columns - {"ledger_id"}
    return tables


def assert_rows_match_raw_tables(parsed: ParsedFile) -> None:
    columns = raw_columns()
    assert parsed.tables
    for table, rows in parsed.tables.items():
        for row in rows:
            assert set(row) == columns[table], table


# == district (xlsx) ==================================================================

PLATFORM_HEADERS = ["平台编号", "平台名称", "平台类别", "级别", "认定日期", "依托单位", "依托单位统一社会信用代码",
                    "变动类型", "孵化面积（平方米）"]
CERTIFICATION_HEADERS = ["统一社会信用代码", "企业名称", "认定类别", "证书编号", "认定日期", "有效期至", "变动类型"]
PROJECT_HEADERS = ["项目编号", "项目名称", "项目类别", "所属区块", "开始日期", "计划完成日期", "状态",
                   "累计完成投资（万元）", "形象进度（%）"]
HEADERS = {"创新平台": PLATFORM_HEADERS, "企业认定": CERTIFICATION_HEADERS, "重点项目": PROJECT_HEADERS}

COVER = [("填报单位", "龙湾区科学技术局"), ("报告期", "2021年03月"), ("填报人", "王小明"),
         ("联系电话", "13857712345"), ("报送日期", "2021-04-06")]


def platform(**values: Any) -> dict[str, Any]:
    return {"平台编号": "LW-P-0012", "平台名称": "浙南科技城孵化器", "平台类别": "孵化器", "级别": "省级",
            "认定日期": "2021-03-05", "依托单位": "温州科创发展有限公司", "依托单位统一社会信用代码": USCC_HOST,
            "变动类型": "新增", "孵化面积（平方米）": 12000, **values}


def certification(**values: Any) -> dict[str, Any]:
    return {"统一社会信用代码": USCC_FIRM, "企业名称": "温州眼谷光电有限公司", "认定类别": "高新技术企业",
            "证书编号": "GR202133000123", "认定日期": "2021-03-01", "有效期至": "2024-02-29", "变动类型": "新增",
            **values}


def project(**values: Any) -> dict[str, Any]:
    return {"项目编号": "LW-X-0031", "项目名称": "中国眼谷二期", "项目类别": "重点区块", "所属区块": "中国眼谷",
            "开始日期": "2020-06-01", "计划完成日期": "2023-12-31", "状态": "在建", "累计完成投资（万元）": "12,345.6",
            "形象进度（%）": 45, **values}


def write_district(folder: Path, name: str = "LW_202103_v1.xlsx", *,
                   platforms: list | None = None, certifications: list | None = None, projects: list | None = None,
                   cover: list | None = COVER, headers: dict[str, list[str]] | None = None,
                   leave_out: tuple[str, ...] = ()) -> Path:
    """A 片区月报 workbook: cover, and each data sheet with a merged title (row 1), notes (row 2),
    the header (row 3) and data rows from row 4. A data row is a dict keyed by the spec's header,
    a list of raw cells, or None for an empty row."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    title = "龙湾区环大罗山科创走廊月度报表（2021年03月）"
    if cover is not None:
        ws = wb.create_sheet("封面")
        ws.append([title])
        for label, value in cover:
            ws.append([label, value])
    data = {"创新平台": [platform()] if platforms is None else platforms,
            "企业认定": [certification()] if certifications is None else certifications,
            "重点项目": [project()] if projects is None else projects}
    for sheet, rows in data.items():
        if sheet in leave_out:
            continue
        spec_headers = HEADERS[sheet]
        written_headers = (headers or {}).get(sheet, spec_headers)
        ws = wb.create_sheet(sheet)
        ws.append([title])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(written_headers))
        ws.append(["填表说明：金额单位为万元，面积单位为平方米。"])
        ws.append(written_headers)
        for row in rows:
            if row is None:
                ws.append([])
            elif isinstance(row, dict):
                ws.append([row.get(h) for h in spec_headers])
            else:
                ws.append(row)
    path = folder / name
    wb.save(path)
    return path


def parse_district(path: Path) -> ParsedFile:
    return district.parse(path, pii_key=KEY)


def test_valid_workbook_loads_every_sheet_into_its_raw_table(tmp_path):
    parsed = parse_district(write_district(tmp_path, "OH_202103_v2.xlsx"))
    assert parsed.quarantined == [] and parsed.rows_received == 3 and parsed.rows_loaded == 3
    assert parsed.file_version == 2
    assert_rows_match_raw_tables(parsed)
    [p] = parsed.tables["raw.district_platforms"]
    assert p == {"area_code": "OH", "report_month": date(2021, 3, 1), "file_version": 2, "platform_id": "LW-P-0012",
                 "platform_name": "浙南科技城孵化器", "platform_category": "孵化器", "platform_level": "省级",
                 "recognised_date": date(2021, 3, 5), "host_name": "温州科创发展有限公司", "host_uscc": USCC_HOST,
                 "change_type": "新增", "incubation_area_m2": Decimal(12000), "source_row": 4}
    [c] = parsed.tables["raw.district_certifications"]
    assert (c["uscc"], c["granted_date"], c["valid_until"]) == (USCC_FIRM, date(2021, 3, 1), date(2024, 2, 29))
    [pr] = parsed.tables["raw.district_projects"]
    assert pr["cumulative_investment_10k_yuan"] == Decimal("12345.6") and pr["progress_pct"] == Decimal(45)


def test_cover_becomes_one_return_row_with_unit_period_and_submission_date(tmp_path):
    parsed = parse_district(write_district(tmp_path))
    assert parsed.tables["raw.district_returns"] == [{
        "area_code": "LW", "report_month": date(2021, 3, 1), "file_version": 1, "reporting_unit": "龙湾区科学技术局",
        "report_period": "2021年03月", "submitted_date": date(2021, 4, 6), "source_row": 3}]


def test_cover_reporter_and_phone_never_appear_in_the_parsed_output(tmp_path):
    parsed = parse_district(write_district(tmp_path, projects=[project(), project(状态="??")]))
    assert "王小明" not in repr(parsed) and "13857712345" not in repr(parsed)


@pytest.mark.parametrize("period", ["202103", "2021-03", "2021年3月", datetime(2021, 3, 1)])
def test_cover_period_forms_naming_the_file_month_are_accepted(tmp_path, period):
    cover = [("填报单位：", "龙湾区科学技术局"), ("报告期：", period)]
    parsed = parse_district(write_district(tmp_path, cover=cover))
    assert parsed.tables["raw.district_returns"][0]["reporting_unit"] == "龙湾区科学技术局"


def test_cover_period_of_another_month_rejects_the_workbook(tmp_path):
    cover = [("填报单位", "龙湾区科学技术局"), ("报告期", "2021年04月")]
    with pytest.raises(FileRejected, match=r"LW_202103_v1\.xlsx 封面 row 3: 报告期 '2021年04月' is 2021-04, "
                                           r"but the file name says 2021-03"):
        parse_district(write_district(tmp_path, cover=cover))


def test_unreadable_cover_submission_date_is_kept_as_null_with_a_note(tmp_path):
    parsed = parse_district(write_district(tmp_path, cover=[("报告期", "202103"), ("报送日期", "下周一")]))
    assert parsed.tables["raw.district_returns"][0]["submitted_date"] is None
    assert any("报送日期" in note for note in parsed.notes)


@pytest.mark.parametrize("sheet", ["封面", "创新平台", "企业认定", "重点项目"])
def test_missing_sheet_rejects_the_workbook_naming_it(tmp_path, sheet):
    path = write_district(tmp_path, cover=None if sheet == "封面" else COVER, leave_out=(sheet,))
    with pytest.raises(FileRejected, match=f"LW_202103_v1.xlsx has no sheet {sheet}"):
        parse_district(path)


def test_missing_column_rejects_the_workbook_naming_file_sheet_and_column(tmp_path):
    headers = {"企业认定": [h if h != "证书编号" else "备注" for h in CERTIFICATION_HEADERS]}
    with pytest.raises(FileRejected, match=r"LW_202103_v1\.xlsx 企业认定 row 3: the header has no column 证书编号"):
        parse_district(write_district(tmp_path, headers=headers))


def test_headers_with_stray_spaces_and_bracket_variants_are_matched(tmp_path):
    headers = {"创新平台": [" 平台编号", "平台 名称", "平台类别\u3000", "级别", "认定日期", "依托单位",
                            "依托单位统一社会信用代码", "变动类型", " 孵化面积 (平方米)"],
               "重点项目": [*PROJECT_HEADERS[:7], "累计完成投资(万元)", "形象进度（％）"]}
    parsed = parse_district(write_district(tmp_path, headers=headers))
    assert parsed.quarantined == []
    assert parsed.tables["raw.district_platforms"][0]["incubation_area_m2"] == Decimal(12000)
    assert parsed.tables["raw.district_projects"][0]["progress_pct"] == Decimal(45)


def test_extra_columns_are_ignored(tmp_path):
    headers = {"企业认定": [*CERTIFICATION_HEADERS, "备注"]}
    rows = [[*certification().values(), "补报"]]
    parsed = parse_district(write_district(tmp_path, headers=headers, certifications=rows))
    assert parsed.quarantined == [] and parsed.rows_loaded == 3


def test_trailing_total_row_is_quarantined_as_total_row_and_counted(tmp_path):
    rows = [project(), project(项目编号="LW-X-0032"), ["合计", None, None, None, None, None, None, 24691.2, None]]
    parsed = parse_district(write_district(tmp_path, projects=rows))
    q = the_one(parsed)
    assert (q.rule_code, q.source_row, q.sheet) == ("total_row", 6, "重点项目")
    assert q.message.startswith("LW_202103_v1.xlsx 重点项目 row 6: ") and "合计" in q.message
    assert q.record["项目编号"] == "合计" and q.record["累计完成投资（万元）"] == "24691.2"
    assert parsed.rows_received == 5
    assert_reconciles(parsed)


def test_empty_rows_are_skipped_and_noted_and_row_numbers_stay_excel_rows(tmp_path):
    rows = [None, platform(), ["", "  ", None], platform(平台编号="LW-P-0013")]
    parsed = parse_district(write_district(tmp_path, platforms=rows))
    assert [r["source_row"] for r in parsed.tables["raw.district_platforms"]] == [5, 7]
    assert "LW_202103_v1.xlsx 创新平台: skipped 2 empty rows" in parsed.notes
    assert parsed.rows_received == 4
    assert_reconciles(parsed)


def test_lowercase_uscc_is_normalised(tmp_path):
    parsed = parse_district(write_district(tmp_path, certifications=[certification(统一社会信用代码=f" {USCC_FIRM.lower()} ")]))
    assert parsed.tables["raw.district_certifications"][0]["uscc"] == USCC_FIRM


def test_full_width_uscc_is_normalised(tmp_path):
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in USCC_FIRM)
    parsed = parse_district(write_district(tmp_path, certifications=[certification(统一社会信用代码=full_width)]))
    assert parsed.tables["raw.district_certifications"][0]["uscc"] == USCC_FIRM


def test_uscc_with_wrong_check_character_is_quarantined_with_a_helpful_message(tmp_path):
    wrong = USCC_FIRM[:17] + ("0" if USCC_FIRM[17] != "0" else "1")
    rows = [certification(), certification(统一社会信用代码=wrong, 有效期至=datetime(2024, 2, 29))]
    parsed = parse_district(write_district(tmp_path, certifications=rows))
    q = the_one(parsed)
    assert (q.rule_code, q.source_row, q.sheet) == ("invalid_uscc", 5, "企业认定")
    assert q.message == (f"LW_202103_v1.xlsx 企业认定 row 5: 统一社会信用代码 {wrong!r} fails the GB 32100-2015 "
                         f"check character (expected {USCC_FIRM[17]!r})")
    assert q.record["统一社会信用代码"] == wrong and q.record["认定日期"] == "2021-03-01"
    assert q.record["有效期至"] == "2024-02-29"  # a date cell, rendered ISO
    json.dumps(q.record)
    assert_reconciles(parsed)


def test_host_uscc_is_optional_but_validated_when_present(tmp_path):
    rows = [platform(依托单位统一社会信用代码=None), platform(依托单位统一社会信用代码="91330300MA2AB1C2D")]
    parsed = parse_district(write_district(tmp_path, platforms=rows))
    assert parsed.tables["raw.district_platforms"][0]["host_uscc"] is None
    assert the_one(parsed).rule_code == "invalid_uscc"


@pytest.mark.parametrize("cell", [datetime(2021, 3, 5), 44260, "2021/3/5", "2021.3.5", "2021年3月5日", "20210305",
                                  20210305])  # the last typed into the cell: a number
def test_date_cells_in_every_form_are_read(tmp_path, cell):
    parsed = parse_district(write_district(tmp_path, platforms=[platform(认定日期=cell)]))
    assert parsed.tables["raw.district_platforms"][0]["recognised_date"] == date(2021, 3, 5)


def test_late_reported_recognition_before_the_month_is_accepted(tmp_path):
    parsed = parse_district(write_district(tmp_path, platforms=[platform(认定日期="2020-11-20")]))
    assert parsed.tables["raw.district_platforms"][0]["recognised_date"] == date(2020, 11, 20)


@pytest.mark.parametrize("cell", ["2021-04-01", "2014-12-31"])
def test_recognition_date_outside_2015_to_the_month_end_is_date_out_of_range(tmp_path, cell):
    parsed = parse_district(write_district(tmp_path, certifications=[certification(认定日期=cell)]))
    q = the_one(parsed)
    assert q.rule_code == "date_out_of_range"
    assert q.message.startswith("LW_202103_v1.xlsx 企业认定 row 4: 认定日期 ") and "2015-01-01..2021-03-31" in q.message


def test_unreadable_date_is_invalid_date(tmp_path):
    q = the_one(parse_district(write_district(tmp_path, platforms=[platform(认定日期="三月五日")])))
    assert q.rule_code == "invalid_date" and "认定日期 '三月五日'" in q.message


def test_new_platform_without_recognition_date_is_missing_value(tmp_path):
    q = the_one(parse_district(write_district(tmp_path, platforms=[platform(认定日期=None)])))
    assert q.rule_code == "missing_value"
    assert q.message == "LW_202103_v1.xlsx 创新平台 row 4: 认定日期 is blank but required for a 新增 row"


def test_new_incubator_without_floor_area_is_missing_value_but_an_update_needs_none(tmp_path):
    rows = [platform(**{"孵化面积（平方米）": None}),
            platform(**{"孵化面积（平方米）": None, "变动类型": "更新", "认定日期": None}),
            platform(**{"孵化面积（平方米）": None, "平台类别": "省级企业研究院"})]
    parsed = parse_district(write_district(tmp_path, platforms=rows))
    q = the_one(parsed)
    assert (q.rule_code, q.source_row) == ("missing_value", 4)
    assert "孵化面积（平方米） is blank but required for a 新增 孵化器" in q.message
    assert len(parsed.tables["raw.district_platforms"]) == 2


@pytest.mark.parametrize(("cell", "expected"), [("1,200㎡", "1200"), ("1200平方米", "1200"), ("１２００", "1200"),
                                                (850.5, "850.5")])
def test_floor_area_with_separators_units_or_full_width_digits_is_read(tmp_path, cell, expected):
    parsed = parse_district(write_district(tmp_path, platforms=[platform(**{"孵化面积（平方米）": cell})]))
    assert parsed.tables["raw.district_platforms"][0]["incubation_area_m2"] == Decimal(expected)


def test_value_outside_the_accepted_categories_is_invalid_value(tmp_path):
    q = the_one(parse_district(write_district(tmp_path, platforms=[platform(平台类别="众创空间")])))
    assert q.rule_code == "invalid_value" and "平台类别 '众创空间' is not one of 高能级创新平台" in q.message


def test_accepted_values_with_stray_spaces_are_normalised(tmp_path):
    parsed = parse_district(write_district(tmp_path, platforms=[platform(变动类型=" 新增\u3000", 级别="省 级")]))
    row = parsed.tables["raw.district_platforms"][0]
    assert (row["change_type"], row["platform_level"]) == ("新增", "省级")


def test_a_revocation_or_update_naming_the_platform_by_its_id_alone_loads_a_new_one_needs_its_category(tmp_path):
    """Spec §1: a 撤销 or 更新 row names the platform by its 平台编号; the attributes it leaves blank are the
    platform's as reported before (carried forward by int_platform_states_windowed)."""
    blank = dict.fromkeys(PLATFORM_HEADERS)
    rows = [{**blank, "平台编号": "LW-P-0001", "变动类型": "撤销"},
            {**blank, "平台编号": "LW-P-0002", "变动类型": "更新", "孵化面积（平方米）": 5000},
            platform(平台类别=None)]
    parsed = parse_district(write_district(tmp_path, platforms=rows))
    loaded = parsed.tables["raw.district_platforms"]
    assert [(r["platform_id"], r["change_type"], r["platform_category"], r["incubation_area_m2"]) for r in loaded] \
        == [("LW-P-0001", "撤销", None, None), ("LW-P-0002", "更新", None, Decimal(5000))]
    q = the_one(parsed)
    assert (q.rule_code, q.source_row) == ("missing_value", 6)
    assert q.message == "LW_202103_v1.xlsx 创新平台 row 6: 平台类别 is blank but required for a 新增 row"


@pytest.mark.parametrize("column", ["平台编号", "平台类别", "变动类型"])
def test_platform_without_a_required_value_is_missing_value(tmp_path, column):
    q = the_one(parse_district(write_district(tmp_path, platforms=[platform(**{column: "  "})])))
    assert q.rule_code == "missing_value" and f"{column} is blank but required" in q.message


@pytest.mark.parametrize("column", ["统一社会信用代码", "认定类别", "证书编号", "变动类型"])
def test_certification_without_a_required_value_is_missing_value(tmp_path, column):
    q = the_one(parse_district(write_district(tmp_path, certifications=[certification(**{column: None})])))
    assert q.rule_code == "missing_value" and column in q.message


def test_revocation_needs_no_grant_date_and_blank_valid_until_is_open_ended(tmp_path):
    rows = [certification(变动类型="撤销", 认定日期=None), certification(认定类别="瞪羚企业", 有效期至=None)]
    parsed = parse_district(write_district(tmp_path, certifications=rows))
    assert parsed.quarantined == []
    assert [r["valid_until"] for r in parsed.tables["raw.district_certifications"]] == [date(2024, 2, 29), None]


def test_new_certification_without_grant_date_is_missing_value(tmp_path):
    q = the_one(parse_district(write_district(tmp_path, certifications=[certification(认定日期=None)])))
    assert q.rule_code == "missing_value" and "认定日期" in q.message


def test_numeric_certificate_number_cell_is_kept_as_text(tmp_path):
    parsed = parse_district(write_district(
        tmp_path, certifications=[certification(认定类别="省级科技型中小企业", 证书编号=20213303000123)]))
    assert parsed.tables["raw.district_certifications"][0]["certificate_no"] == "20213303000123"


def test_project_dates_are_not_bounded_above(tmp_path):
    parsed = parse_district(write_district(tmp_path, projects=[project(计划完成日期="2035-12-31", 开始日期="2021-06-01")]))
    assert parsed.tables["raw.district_projects"][0]["planned_completion_date"] == date(2035, 12, 31)


def test_project_start_before_2015_is_date_out_of_range(tmp_path):
    assert the_one(parse_district(write_district(tmp_path, projects=[project(开始日期="2014-06-01")]))).rule_code \
        == "date_out_of_range"


def test_negative_investment_is_negative_amount(tmp_path):
    q = the_one(parse_district(write_district(tmp_path, projects=[project(**{"累计完成投资（万元）": -5})])))
    assert q.rule_code == "negative_amount" and "累计完成投资（万元） -5 is negative" in q.message


def test_investment_given_in_yuan_is_converted_to_ten_thousand_yuan(tmp_path):
    parsed = parse_district(write_district(tmp_path, projects=[project(**{"累计完成投资（万元）": "1,234,500元"})]))
    assert parsed.tables["raw.district_projects"][0]["cumulative_investment_10k_yuan"] == Decimal("123.45")


def test_investment_with_an_incompatible_unit_is_invalid_number(tmp_path):
    q = the_one(parse_district(write_district(tmp_path, projects=[project(**{"累计完成投资（万元）": "300㎡"})])))
    assert q.rule_code == "invalid_number"


@pytest.mark.parametrize("cell", [120, -1, "101%"])
def test_progress_outside_0_to_100_is_invalid_value(tmp_path, cell):
    q = the_one(parse_district(write_district(tmp_path, projects=[project(**{"形象进度（%）": cell})])))
    assert q.rule_code == "invalid_value" and "0..100" in q.message


def test_progress_in_a_percent_formatted_cell_is_read_as_displayed(tmp_path):
    path = write_district(tmp_path)
    wb = openpyxl.load_workbook(path)
    cell = wb["重点项目"].cell(row=4, column=PROJECT_HEADERS.index("形象进度（%）") + 1)
    cell.value, cell.number_format = 0.85, "0%"
    wb.save(path)
    assert parse_district(path).tables["raw.district_projects"][0]["progress_pct"] == Decimal(85)


def test_every_row_is_either_loaded_or_quarantined(tmp_path):
    parsed = parse_district(write_district(
        tmp_path,
        platforms=[platform(), platform(平台类别="x"), None, ["合计"]],
        certifications=[certification(), certification(统一社会信用代码="x")],
        projects=[project(), project(状态="x"), project(项目编号="LW-X-2")]))
    assert (parsed.rows_received, parsed.rows_loaded, len(parsed.quarantined)) == (8, 4, 4)
    assert_reconciles(parsed)


# -- district: unreadable or dangerous workbooks -------------------------------------------------

def test_non_zip_file_is_rejected_as_not_a_workbook(tmp_path):
    path = tmp_path / "LW_202103_v1.xlsx"
    path.write_text("平台编号,平台名称\n", encoding="utf-8")
    with pytest.raises(FileRejected, match=r"LW_202103_v1\.xlsx is not a readable xlsx workbook"):
        parse_district(path)


def test_truncated_workbook_is_rejected(tmp_path):
    path = write_district(tmp_path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(FileRejected, match="is not a readable xlsx workbook"):
        parse_district(path)


def test_zip_that_is_not_a_workbook_is_rejected(tmp_path):
    path = tmp_path / "LW_202103_v1.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(FileRejected, match="is not a readable xlsx workbook"):
        parse_district(path)


def test_workbook_with_an_extreme_compression_ratio_is_rejected_before_parsing(tmp_path):
    path = write_district(tmp_path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", bytes(20 * 1024 * 1024))
    with pytest.raises(FileRejected, match=r"compression ratio of [\d,]+:1, over the limit of 200:1"):
        parse_district(path)


def test_workbook_unpacking_beyond_the_limit_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(district, "MAX_UNCOMPRESSED_BYTES", 10_000)
    with pytest.raises(FileRejected, match="unpacks to .* bytes, over the limit of 10,000"):
        parse_district(write_district(tmp_path))


def test_workbook_over_the_size_limit_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRIDOR_MAX_XLSX_BYTES", "1000")
    with pytest.raises(FileRejected, match=r"over the limit of 1,000 \(CORRIDOR_MAX_XLSX_BYTES\)"):
        parse_district(write_district(tmp_path))


def test_workbook_with_a_truncated_sheet_is_rejected_naming_the_sheet(tmp_path):
    path = write_district(tmp_path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members["xl/worksheets/sheet2.xml"] = members["xl/worksheets/sheet2.xml"][:-200]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(FileRejected, match=r"LW_202103_v1\.xlsx 创新平台 is unreadable after row \d+: ExpatError"):
        parse_district(path)


@pytest.mark.parametrize("member", ["xl/workbook.xml", "xl/worksheets/sheet2.xml"])
def test_workbook_declaring_xml_entities_is_rejected(tmp_path, member):
    path = write_district(tmp_path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[member] = b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>' + members[member]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(FileRejected, match="LW_202103_v1.xlsx is not a readable xlsx workbook: EntitiesForbidden"):
        parse_district(path)


def test_workbook_with_a_name_off_the_pattern_is_rejected(tmp_path):
    with pytest.raises(FileRejected, match=r"does not match \{AREA\}_\{YYYYMM\}_v\{N\}\.xlsx"):
        parse_district(write_district(tmp_path, "LW_2021-03.xlsx"))


# == techmarket (CSV, UTF-8 with BOM) ====================================================

TECH_HEADERS = ["合同登记号", "登记日期", "合同名称", "合同类型", "技术领域", "卖方名称", "卖方统一社会信用代码",
                "卖方所属片区", "买方名称", "买方统一社会信用代码", "买方所在地", "合同成交额（万元）",
                "技术交易额（万元）", "登记状态"]


def contract(**values: Any) -> dict[str, Any]:
    return {"合同登记号": "2021330300000123", "登记日期": "2021-03-04", "合同名称": "眼科光学检测设备技术开发",
            "合同类型": "技术开发", "技术领域": "生物医药", "卖方名称": "温州眼谷光电有限公司",
            "卖方统一社会信用代码": USCC_FIRM, "卖方所属片区": "LW", "买方名称": "北京某医疗器械有限公司",
            "买方统一社会信用代码": USCC_BUYER, "买方所在地": "北京市", "合同成交额（万元）": "120.5",
            "技术交易额（万元）": "100", "登记状态": "有效", **values}


def write_csv(path: Path, headers: list[str], rows: list, encoding: str) -> Path:
    """Quoted, comma-separated; a row is a dict keyed by header, a list of fields, or None (blank line)."""
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        writer.writerow(headers)
        for row in rows:
            if row is None:
                fh.write("\r\n")
            else:
                writer.writerow([row.get(h, "") for h in headers] if isinstance(row, dict) else row)
    return path


def parse_tech(tmp_path: Path, rows: list, headers: list[str] = TECH_HEADERS) -> ParsedFile:
    path = write_csv(tmp_path / "tech_contracts_20210305.csv", headers, rows, "utf-8-sig")
    return techmarket.parse(path, pii_key=KEY)


def test_valid_contract_loads_with_export_date_and_row_hash(tmp_path):
    parsed = parse_tech(tmp_path, [contract()])
    assert parsed.quarantined == []
    assert_rows_match_raw_tables(parsed)
    [row] = parsed.tables["raw.techmarket_contracts"]
    assert row["export_date"] == date(2021, 3, 5) and row["source_row"] == 2 and row["file_version"] == 1
    assert row["contract_value_10k_yuan"] == Decimal("120.5") and row["seller_area_code"] == "LW"
    assert re.fullmatch(r"[0-9a-f]{32}", row["row_hash"])


def test_csv_without_bom_is_read_too(tmp_path):
    path = write_csv(tmp_path / "tech_contracts_20210305.csv", TECH_HEADERS, [contract()], "utf-8")
    assert techmarket.parse(path, pii_key=KEY).rows_loaded == 1


def test_exact_duplicate_row_within_the_file_is_quarantined_naming_the_first(tmp_path):
    parsed = parse_tech(tmp_path, [contract(), contract(合同登记号="2021330300000124"), contract()])
    q = the_one(parsed)
    assert (q.rule_code, q.source_row) == ("duplicate_row", 4)
    assert q.message == "tech_contracts_20210305.csv row 4: an exact duplicate of row 2"
    assert_reconciles(parsed)


def test_rows_equal_after_normalisation_are_duplicates(tmp_path):
    dirty = contract(**{"合同成交额（万元）": " 120.50 ", "卖方所属片区": "龙湾区", "登记日期": "2021/3/4",
                        "卖方统一社会信用代码": USCC_FIRM.lower()})
    parsed = parse_tech(tmp_path, [contract(), dirty])
    assert the_one(parsed).rule_code == "duplicate_row"


def test_same_contract_in_a_new_state_is_not_a_duplicate(tmp_path):
    parsed = parse_tech(tmp_path, [contract(), contract(登记状态="变更", **{"合同成交额（万元）": "130"})])
    rows = parsed.tables["raw.techmarket_contracts"]
    assert parsed.quarantined == [] and rows[0]["row_hash"] != rows[1]["row_hash"]


def test_tech_value_above_contract_value_is_quarantined(tmp_path):
    q = the_one(parse_tech(tmp_path, [contract(**{"技术交易额（万元）": "130"})]))
    assert q.rule_code == "tech_value_exceeds_contract"
    assert q.message == "tech_contracts_20210305.csv row 2: 技术交易额（万元） 130 exceeds 合同成交额（万元） 120.5"
    assert q.record["技术交易额（万元）"] == "130"


def test_amounts_with_separators_and_yuan_are_converted_to_ten_thousand_yuan(tmp_path):
    parsed = parse_tech(tmp_path, [contract(**{"合同成交额（万元）": "1,205,000元", "技术交易额（万元）": "１００万元"})])
    row = parsed.tables["raw.techmarket_contracts"][0]
    assert (row["contract_value_10k_yuan"], row["tech_value_10k_yuan"]) == (Decimal("120.5"), Decimal(100))


def test_negative_contract_value_is_negative_amount(tmp_path):
    assert the_one(parse_tech(tmp_path, [contract(**{"合同成交额（万元）": "-1"})])).rule_code == "negative_amount"


def test_registration_number_not_of_16_digits_is_invalid_value(tmp_path):
    q = the_one(parse_tech(tmp_path, [contract(合同登记号="202133030000012")]))
    assert q.rule_code == "invalid_value" and "16-digit" in q.message


def test_registration_number_with_spaces_or_full_width_digits_is_normalised(tmp_path):
    parsed = parse_tech(tmp_path, [contract(合同登记号=" ２０２１３３０３００００ ０１２３")])
    assert parsed.tables["raw.techmarket_contracts"][0]["registration_no"] == "2021330300000123"


def test_registration_after_the_export_date_is_date_out_of_range(tmp_path):
    q = the_one(parse_tech(tmp_path, [contract(登记日期="2021-03-06")]))
    assert q.rule_code == "date_out_of_range" and "2015-01-01..2021-03-05" in q.message


@pytest.mark.parametrize(("value", "expected"), [("龙湾", "LW"), ("瓯江口产业集聚区", "OJK"), (" yq ", "YQ")])
def test_seller_area_names_are_normalised(tmp_path, value, expected):
    parsed = parse_tech(tmp_path, [contract(卖方所属片区=value)])
    assert parsed.tables["raw.techmarket_contracts"][0]["seller_area_code"] == expected


def test_unknown_seller_area_is_unknown_area(tmp_path):
    q = the_one(parse_tech(tmp_path, [contract(卖方所属片区="鹿城区")]))
    assert q.rule_code == "unknown_area" and "卖方所属片区 '鹿城区'" in q.message


def test_missing_seller_uscc_is_missing_value_and_blank_buyer_uscc_is_none(tmp_path):
    parsed = parse_tech(tmp_path, [contract(卖方统一社会信用代码=""),
                                   contract(买方统一社会信用代码="", 合同登记号="2021330300000999")])
    assert the_one(parsed).rule_code == "missing_value"
    assert parsed.tables["raw.techmarket_contracts"][0]["buyer_uscc"] is None


def test_invalid_buyer_uscc_is_invalid_uscc(tmp_path):
    q = the_one(parse_tech(tmp_path, [contract(买方统一社会信用代码="91110108MA001234X")]))
    assert q.rule_code == "invalid_uscc" and "买方统一社会信用代码" in q.message


def test_unknown_contract_type_is_invalid_value(tmp_path):
    assert the_one(parse_tech(tmp_path, [contract(合同类型="技术入股")])).rule_code == "invalid_value"


def test_record_with_the_wrong_number_of_fields_is_quarantined(tmp_path):
    q = the_one(parse_tech(tmp_path, [[*contract().values(), "多余"]]))
    assert q.rule_code == "invalid_value" and "has 15 fields where the header has 14" in q.message
    assert q.record["column 15"] == "多余"


def test_csv_total_row_and_blank_lines(tmp_path):
    parsed = parse_tech(tmp_path, [contract(), None, ["合计", *[""] * 10, "120.5", "100", ""]])
    assert the_one(parsed).rule_code == "total_row" and the_one(parsed).source_row == 4
    assert parsed.notes == ["tech_contracts_20210305.csv: skipped 1 empty row"]
    assert_reconciles(parsed)


def test_csv_missing_a_column_is_rejected_naming_it(tmp_path):
    headers = [h for h in TECH_HEADERS if h != "登记状态"]
    with pytest.raises(FileRejected, match=r"tech_contracts_20210305\.csv row 1: the header has no column 登记状态"):
        parse_tech(tmp_path, [contract()], headers)


def test_csv_header_variants_are_matched(tmp_path):
    headers = [h.replace("（", "(").replace("）", ")") if "万元" in h else f" {h} " for h in TECH_HEADERS]
    parsed = parse_tech(tmp_path, [[*contract().values()]], headers)
    assert parsed.rows_loaded == 1


def test_csv_that_is_not_utf8_is_rejected_naming_the_byte_offset(tmp_path):
    path = write_csv(tmp_path / "tech_contracts_20210305.csv", TECH_HEADERS, [contract()], "gb18030")
    with pytest.raises(FileRejected, match=r"tech_contracts_20210305\.csv is not valid UTF-8: byte 0x.. at offset "
                                           r"\d+ \(line 1\)"):
        techmarket.parse(path, pii_key=KEY)


def test_decoding_error_offset_counts_the_bom(tmp_path):
    path = tmp_path / "tech_contracts_20210305.csv"
    header = ",".join(TECH_HEADERS).encode() + b"\n"
    path.write_bytes(b"\xef\xbb\xbf" + header + b"\x80")
    offset = 3 + len(header)
    with pytest.raises(FileRejected, match=rf"byte 0x80 at offset {offset} \(line 2\)"):
        techmarket.parse(path, pii_key=KEY)


def test_empty_csv_is_rejected(tmp_path):
    path = tmp_path / "tech_contracts_20210305.csv"
    path.write_bytes(b"")
    with pytest.raises(FileRejected, match="no header line"):
        techmarket.parse(path, pii_key=KEY)


def test_quoted_field_with_a_comma_and_a_newline_is_read(tmp_path):
    parsed = parse_tech(tmp_path, [contract(合同名称="检测设备，第二期\n补充协议"), contract(合同登记号="2021330300000777")])
    rows = parsed.tables["raw.techmarket_contracts"]
    assert rows[0]["contract_title"] == "检测设备，第二期\n补充协议"
    # each record by the line where it starts: what an editor's "go to line" shows of it
    assert [r["source_row"] for r in rows] == [2, 4]


def test_a_refused_record_over_several_lines_is_named_by_its_first_line(tmp_path):
    parsed = parse_tech(tmp_path, [contract(合同名称="检测设备\n第二期\n补充协议", 合同类型="技术入股"),
                                   contract(合同登记号="2021330300000777", 合同类型="技术入股")])
    assert [(q.source_row, q.rule_code) for q in parsed.quarantined] == [(2, "invalid_value"), (5, "invalid_value")]
    assert parsed.quarantined[0].message.startswith("tech_contracts_20210305.csv row 2: ")
    assert_reconciles(parsed)


# == bank (CSV, GB18030) =================================================================

BANK_HEADERS = ["贷款编号", "借款人名称", "借款人统一社会信用代码", "所属片区", "质押物类型", "质押登记号",
                "知识产权编号", "贷款金额（元）", "放款日期", "到期日期", "年利率（%）", "贷款状态", "报告期"]


def loan(**values: Any) -> dict[str, Any]:
    return {"贷款编号": "WZB-2021-0001", "借款人名称": "温州眼谷光电有限公司", "借款人统一社会信用代码": USCC_FIRM,
            "所属片区": "龙湾区", "质押物类型": "专利权", "质押登记号": "Y2021330000123",
            "知识产权编号": "ZL202110123456.7；ZL202120654321.0", "贷款金额（元）": "5,000,000",
            "放款日期": "2021-03-15", "到期日期": "2022-03-14", "年利率（%）": "4.35", "贷款状态": "正常",
            "报告期": "202103", **values}


def parse_bank(tmp_path: Path, rows: list, encoding: str = "gb18030") -> ParsedFile:
    path = write_csv(tmp_path / "WZB_202103.csv", BANK_HEADERS, rows, encoding)
    return bank.parse(path, pii_key=KEY)


def test_valid_loan_loads_from_gb18030(tmp_path):
    parsed = parse_bank(tmp_path, [loan()])
    assert parsed.quarantined == []
    assert_rows_match_raw_tables(parsed)
    [row] = parsed.tables["raw.bank_loans"]
    assert row["bank_code"] == "WZB" and row["report_month"] == date(2021, 3, 1) and row["area_code"] == "LW"
    assert row["borrower_name"] == "温州眼谷光电有限公司" and row["loan_amount_yuan"] == Decimal(5000000)
    assert row["ip_numbers"] == ["ZL202110123456.7", "ZL202120654321.0"]
    assert row["annual_rate_pct"] == Decimal("4.35") and row["due_date"] == date(2022, 3, 14)


def test_amount_in_ten_thousand_yuan_is_converted_to_yuan(tmp_path):
    parsed = parse_bank(tmp_path, [loan(**{"贷款金额（元）": "50万元"})])
    assert parsed.tables["raw.bank_loans"][0]["loan_amount_yuan"] == Decimal(500000)


def test_ip_numbers_split_on_either_semicolon_and_empty_is_an_empty_list(tmp_path):
    rows = [loan(知识产权编号=" A1 ; A2；；A3 "), loan(贷款编号="WZB-2", 质押物类型="应收账款", 知识产权编号="")]
    loans = parse_bank(tmp_path, rows).tables["raw.bank_loans"]
    assert [r["ip_numbers"] for r in loans] == [["A1", "A2", "A3"], []]


def test_report_period_other_than_the_file_month_is_period_mismatch(tmp_path):
    q = the_one(parse_bank(tmp_path, [loan(报告期="202102")]))
    assert q.rule_code == "period_mismatch"
    assert q.message == "WZB_202103.csv row 2: 报告期 '202102' is not the file's month 202103"


def test_disbursement_after_the_month_is_date_out_of_range_but_due_date_is_unbounded(tmp_path):
    parsed = parse_bank(tmp_path, [loan(放款日期="2021-04-01"), loan(贷款编号="WZB-2", 到期日期="2031-03-14")])
    assert the_one(parsed).rule_code == "date_out_of_range"
    assert parsed.tables["raw.bank_loans"][0]["due_date"] == date(2031, 3, 14)


def test_unknown_collateral_type_and_loan_status_are_invalid_value(tmp_path):
    parsed = parse_bank(tmp_path, [loan(质押物类型="房产"), loan(贷款状态="展期")])
    assert [q.rule_code for q in parsed.quarantined] == ["invalid_value", "invalid_value"]


def test_negative_loan_amount_is_negative_amount(tmp_path):
    assert the_one(parse_bank(tmp_path, [loan(**{"贷款金额（元）": "-100"})])).rule_code == "negative_amount"


def test_borrower_uscc_is_validated(tmp_path):
    assert the_one(parse_bank(tmp_path, [loan(借款人统一社会信用代码=USCC_FIRM[:17])])).rule_code == "invalid_uscc"


def test_bank_file_that_is_not_gb18030_is_rejected_naming_the_offset(tmp_path):
    path = write_csv(tmp_path / "WZB_202103.csv", BANK_HEADERS, [loan()], "gb18030")
    data = path.read_bytes()
    path.write_bytes(data + b'"\xff\xff"\r\n')
    with pytest.raises(FileRejected, match=rf"WZB_202103\.csv is not valid GB18030: byte 0xff at offset {len(data) + 1}"
                                           r" \(line 3\)"):
        bank.parse(path, pii_key=KEY)


# == hr (JSON Lines) =======================================================================

def talent(**values: Any) -> dict[str, Any]:
    return {"record_id": "HR-2021-000123", "id_number": ID_NUMBER, "name": NAME, "category": "C",
            "title": "省级领军人才", "employer_name": "温州眼谷光电有限公司", "employer_uscc": USCC_FIRM,
            "area": "LW", "intake_date": "2021-03-12", "intake_type": "引进", "overseas": True, "team_id": None,
            "action": "new", **values}


def parse_hr(tmp_path: Path, lines: list) -> ParsedFile:
    path = tmp_path / "talent_202103.jsonl"
    path.write_text("".join((json.dumps(x, ensure_ascii=False) if isinstance(x, dict) else x) + "\n"
                            for x in lines), encoding="utf-8")
    return hr.parse(path, pii_key=KEY)


def assert_no_personal_data(parsed: ParsedFile, *ids: str) -> None:
    text = repr(parsed)
    for value in (ID_NUMBER, NAME, *ids):
        assert value not in text


def test_valid_talent_loads_with_person_key_and_without_id_or_name(tmp_path):
    parsed = parse_hr(tmp_path, [talent()])
    assert parsed.quarantined == []
    assert_rows_match_raw_tables(parsed)
    [row] = parsed.tables["raw.hr_talents"]
    assert row["person_key"] == person_key(ID_NUMBER, KEY)
    assert row["file_month"] == date(2021, 3, 1) and row["source_row"] == 1 and row["is_overseas"] is True
    assert "name" not in row and "id_number" not in row
    assert_no_personal_data(parsed)


def test_lowercase_x_in_id_number_gives_the_same_person_key(tmp_path):
    body = next(b for i in range(1000) if id_check_char(b := f"33030319850505{i:03d}") == "X")
    parsed = parse_hr(tmp_path, [talent(id_number=body + "x"), talent(record_id="HR-2", id_number=body + "X")])
    keys = {r["person_key"] for r in parsed.tables["raw.hr_talents"]}
    assert keys == {person_key(body + "X", KEY)}
    assert_no_personal_data(parsed, body)


def test_id_number_failing_the_checksum_is_quarantined_masked(tmp_path):
    bad = ID_NUMBER[:17] + ("0" if ID_NUMBER[17] != "0" else "1")
    parsed = parse_hr(tmp_path, [talent(), talent(record_id="HR-2", id_number=bad)])
    q = the_one(parsed)
    assert (q.rule_code, q.source_row) == ("invalid_id_number", 2)
    assert q.message == "talent_202103.jsonl line 2: id_number fails the GB 11643-1999 check digit"
    assert q.record["id_number"] == bad[:6] + "*" * 12 and q.record["name"] == "欧***"
    assert q.record["record_id"] == "HR-2"
    assert_no_personal_data(parsed, bad, bad[-4:])


def test_invalid_json_line_is_quarantined_with_personal_data_masked(tmp_path):
    broken = f'{{"record_id": "HR-9", "id_number": "{ID_NUMBER}", "name": "{NAME}", "category": "C",'
    parsed = parse_hr(tmp_path, [talent(), broken])
    q = the_one(parsed)
    assert (q.rule_code, q.source_row) == ("invalid_json", 2)
    assert q.message.startswith("talent_202103.jsonl line 2: the line is not valid JSON (")
    assert "HR-9" in q.record["line"] and "欧***" in q.record["line"]
    assert_no_personal_data(parsed)


def test_json_line_that_is_not_an_object_is_invalid_json(tmp_path):
    q = the_one(parse_hr(tmp_path, [f'["{ID_NUMBER}", "{NAME}"]']))
    assert q.rule_code == "invalid_json" and "a JSON array, not an object" in q.message
    assert ID_NUMBER not in q.record["line"]


def test_unknown_category_is_unknown_category(tmp_path):
    q = the_one(parse_hr(tmp_path, [talent(category="F")]))
    assert q.rule_code == "unknown_category" and "category 'F' is not a talent category A..E" in q.message


def test_lowercase_category_is_normalised(tmp_path):
    assert parse_hr(tmp_path, [talent(category=" b ")]).tables["raw.hr_talents"][0]["category"] == "B"


def test_duplicate_record_id_quarantines_the_later_occurrence(tmp_path):
    parsed = parse_hr(tmp_path, [talent(), talent(record_id="HR-2"), talent(title="国家级领军人才")])
    q = the_one(parsed)
    assert (q.rule_code, q.source_row) == ("duplicate_record_id", 3)
    assert q.message == "talent_202103.jsonl line 3: record_id 'HR-2021-000123' was already received on line 1"
    assert_no_personal_data(parsed)


def test_intake_date_after_the_file_month_is_date_out_of_range(tmp_path):
    assert the_one(parse_hr(tmp_path, [talent(intake_date="2021-04-02")])).rule_code == "date_out_of_range"


@pytest.mark.parametrize(("overseas", "expected"), [("是", True), ("否", False), (False, False), (None, None)])
def test_overseas_accepts_booleans_and_chinese_yes_no(tmp_path, overseas, expected):
    parsed = parse_hr(tmp_path, [talent(overseas=overseas)])
    assert parsed.tables["raw.hr_talents"][0]["is_overseas"] is expected


def test_area_short_form_and_team_id_are_normalised(tmp_path):
    row = parse_hr(tmp_path, [talent(area="瓯江口", team_id=" T-2021-07 ")]).tables["raw.hr_talents"][0]
    assert (row["area_code"], row["team_id"]) == ("OJK", "T-2021-07")


@pytest.mark.parametrize(("field", "value"), [("intake_type", "招聘"), ("action", "delete")])
def test_unknown_intake_type_or_action_is_invalid_value(tmp_path, field, value):
    assert the_one(parse_hr(tmp_path, [talent(**{field: value})])).rule_code == "invalid_value"


def test_missing_id_number_is_missing_value(tmp_path):
    q = the_one(parse_hr(tmp_path, [talent(id_number=None)]))
    assert q.rule_code == "missing_value" and q.message.endswith("id_number is blank but required")


def test_blank_lines_are_skipped_and_noted(tmp_path):
    parsed = parse_hr(tmp_path, ["", talent(), "   "])
    assert parsed.rows_received == 1 and parsed.tables["raw.hr_talents"][0]["source_row"] == 2
    assert parsed.notes == ["talent_202103.jsonl: skipped 2 empty lines"]


def test_hr_file_that_is_not_utf8_is_rejected(tmp_path):
    path = tmp_path / "talent_202103.jsonl"
    path.write_bytes(json.dumps(talent(), ensure_ascii=False).encode("gb18030") + b"\n")
    with pytest.raises(FileRejected, match=r"talent_202103\.jsonl is not valid UTF-8: byte 0x.. at offset \d+"):
        hr.parse(path, pii_key=KEY)


def test_every_hr_line_is_loaded_or_quarantined_and_none_leaks_personal_data(tmp_path):
    other = valid_id("33038119920202456")
    lines = [talent(), "not json", talent(record_id="HR-2", id_number=other, name="李四", category="Z"),
             talent(record_id="HR-3", id_number=other[:17], name="王五"), talent()]
    parsed = parse_hr(tmp_path, lines)
    assert (parsed.rows_received, parsed.rows_loaded, len(parsed.quarantined)) == (5, 1, 4)
    assert_no_personal_data(parsed, other, other[:17], "李四", "王五")
    json.dumps([q.record for q in parsed.quarantined], ensure_ascii=False)
