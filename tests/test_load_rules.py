"""The quality gate's range and order rules on raw rows are the loader's too: a row that breaks one is
quarantined with its reason, so it costs that row, not every later gate.

The gate (src/corridor/quality/catalog.py) holds raw.bank_loans to 贷款金额 > 0, 年利率 within 0..100 and
到期日期 not before 放款日期, raw.district_certifications to 有效期至 not before 认定日期, and
raw.district_projects to 计划完成日期 not before 开始日期. Raw rows are never changed, and a failed gate
records no file as validated: a row loaded against one of these rules blocked publication at every gate after
it, and no later file could lift it. Both parsing paths (per row and vectorised) quarantine the same rows.
"""

from __future__ import annotations

from datetime import date

from corridor.feeds.base import RULES
from tests.test_fast_path import compare, compare_workbooks
from tests.test_parsers import certification, loan, parse_bank, parse_district, project, write_district


def _quarantined(parsed) -> list[tuple[int, str, str]]:
    return [(q.source_row, q.rule_code, q.message) for q in parsed.quarantined]


BAD_LOANS = [
    loan(贷款编号="WZB-1", **{"贷款金额（元）": "0"}),
    loan(贷款编号="WZB-2", **{"年利率（%）": "152"}),
    loan(贷款编号="WZB-3", 放款日期="2021-03-15", 到期日期="2021-03-14"),
]
GOOD_LOANS = [
    loan(贷款编号="WZB-4", 放款日期="2021-03-15", 到期日期="2021-03-15"),   # due the day it is disbursed
    loan(贷款编号="WZB-5", **{"年利率（%）": "100", "贷款金额（元）": "0.01"}),
    loan(贷款编号="WZB-6", 到期日期=None, **{"年利率（%）": None}),         # blank: not known, not wrong
]


def test_a_loan_of_nothing_at_an_impossible_rate_or_due_before_it_is_disbursed_is_quarantined(tmp_path):
    parsed = parse_bank(tmp_path, [*BAD_LOANS, *GOOD_LOANS])
    assert "dates_out_of_order" in RULES
    assert _quarantined(parsed) == [
        (2, "invalid_value", "WZB_202103.csv row 2: 贷款金额（元） '0' is not above 0"),
        (3, "invalid_value", "WZB_202103.csv row 3: 年利率（%） '152' is not an annual rate within 0..100 %"),
        (4, "dates_out_of_order", "WZB_202103.csv row 4: 到期日期 2021-03-14 is before 放款日期 2021-03-15"),
    ]
    assert [r["loan_id"] for r in parsed.tables["raw.bank_loans"]] == ["WZB-4", "WZB-5", "WZB-6"]


def test_the_vectorised_path_quarantines_the_same_loans(columns, monkeypatch, tmp_path):
    parse_bank(tmp_path, [*GOOD_LOANS, *BAD_LOANS, *GOOD_LOANS[:1]])
    first = tmp_path / "WZB_202103.csv"
    second = first.with_name("ICBC_202103.csv")  # two files: a batch, which the vectorised path takes
    second.write_bytes(first.read_bytes())
    (tmp_path / "spool").mkdir()
    fast_rows, received = compare("bank", [first, second], columns, monkeypatch, tmp_path / "spool")
    assert received == 14 and fast_rows >= 6  # the good rows went the vectorised way


def test_a_certificate_valid_until_before_it_was_granted_and_a_project_due_before_it_starts_are_quarantined(
        tmp_path):
    parsed = parse_district(write_district(
        tmp_path,
        certifications=[certification(有效期至="2021-02-28"), certification(证书编号="GR202133000124"),
                        certification(证书编号="GR202133000125", 有效期至="2021-03-01"),  # the day granted
                        certification(证书编号="GR202133000126", 变动类型="撤销", 认定日期=None,
                                      有效期至="2020-01-01")],  # no grant date: nothing to be out of order with
        projects=[project(开始日期="2021-06-01", 计划完成日期="2021-05-31"), project(项目编号="LW-X-0032"),
                  project(项目编号="LW-X-0033", 开始日期=None, 计划完成日期="2019-01-01")]))
    assert [(q.sheet, q.source_row, q.rule_code, q.message) for q in parsed.quarantined] == [
        ("企业认定", 4, "dates_out_of_order", "LW_202103_v1.xlsx 企业认定 row 4: 有效期至 2021-02-28 is before 认定日期 2021-03-01"),
        ("重点项目", 4, "dates_out_of_order", "LW_202103_v1.xlsx 重点项目 row 4: 计划完成日期 2021-05-31 is before 开始日期 2021-06-01")]
    certificates = parsed.tables["raw.district_certifications"]
    assert [c["certificate_no"] for c in certificates] == ["GR202133000124", "GR202133000125", "GR202133000126"]
    assert certificates[1]["valid_until"] == date(2021, 3, 1)
    assert [p["project_id"] for p in parsed.tables["raw.district_projects"]] == ["LW-X-0032", "LW-X-0033"]


def test_the_vectorised_and_calamine_paths_quarantine_the_same_district_rows(columns, monkeypatch, tmp_path):
    folder = tmp_path / "district"
    folder.mkdir()
    files = [write_district(folder, f"LW_202103_v{v}.xlsx",
                            certifications=[certification(有效期至="2021-02-28"), certification(证书编号=f"GR2021330001{v}")],
                            projects=[project(开始日期="2021-06-01", 计划完成日期="2021-05-31"),
                                      project(项目编号="LW-X-0032")])
             for v in (1, 2)]  # two workbooks: a batch, which the vectorised path takes
    fast_rows: list[int] = []
    (tmp_path / "spool").mkdir()
    compare_workbooks(files, columns, monkeypatch, tmp_path / "spool", fast_rows)
    assert sum(fast_rows) >= 2
