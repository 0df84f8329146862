"""The shipped KPI configuration (dbt_project/seeds/*.csv) says what the specification says.

The KPI oracle (tests/kpi_oracle.py) recomputes every value from the raw rows but reads the targets, the
allocation and the weights from these same seeds, so a wrong number there is invisible to it. Here each
KPI's row is held to kpis.md (shared/feeds/kpis.md: indicator name, target, cumulative or annual) and, for
the targets, to the sentence of the action plan 温政办〔2020〕5号 (shared/source/action-plan-2020-2022.txt)
the number comes from, quoted. kpis.md: "Per-area targets and weights are not in the plan: they are
configuration with sensible defaults (for example an equal split)" and "weights in configuration (default
equal)": the shipped split and weights are equal (a deliberate other split changes this test with it)."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

SEEDS = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds"
AREAS = ("LW", "OH", "YQ", "RA", "ZN", "OJK")

# code: (indicator as kpis.md names it, unit, target_kind, corridor target, target as kpis.md states it,
#        the plan's sentence (None: kpis.md only), the number and measure word the plan gives)
SPEC = {
    "K01": ("新增高能级创新平台 (累计)", "家", "cumulative", "20", "≥ 20 by 2022",
            "累计新增高能级创新平台20家以上", "20家"),
    "K02": ("新增省级企业研究院 (累计)", "家", "cumulative", "35", "≥ 35 by 2022",
            "省级企业研究院35家以上", "35家"),
    "K03": ("技术交易额年增速", "比率", "annual", "0.30", "≥ 0.30 every year",
            "技术交易额年增速30%以上", "30%"),
    "K04": ("有效高新技术企业数", "家", "cumulative", "900", "≥ 900 by 2022",
            "有效高新技术企业900家以上", "900家"),
    "K05": ("省级科技型中小企业数", "家", "cumulative", "3600", "≥ 3,600 by 2022",
            "省级科技型中小企业3600家以上", "3600家"),
    "K06": ("累计引育高层次人才", "人", "cumulative", "2000", "≥ 2,000 by 2022",
            "累计引育海内外高层次人才2000名以上", "2000名"),
    "K07": ("产业创新服务综合体", "家", "cumulative", "10", "≥ 10 by 2022",
            "创建(培育)产业创新服务综合体达到10家以上", "10家"),
    "K08": ("未来社区", "个", "cumulative", "4", "4 by 2022",
            "创建未来社区4个", "4个"),
    "K09": ("创业孵化面积 (万平方米)", "万平方米", "cumulative", "110", "≥ 110 by 2022",
            "到2022年,创业孵化面积达到110万平方米", "110万平方米"),
    "K10": ("新增创新型领军(瞪羚)企业 (累计)", "家", "cumulative", "30", "≥ 30 by 2022",
            "力争到 2022 年创新型领军(瞪羚)企业新增30家", "30家"),
    "K11": ("累计实施创新型重大科技项目", "个", "cumulative", "30", "≥ 30 by 2022",
            "到2022年,累计实施30个以上创新型重大科技项目", "30个"),
    "K12": ("引进高水平科技团队 (年)", "个", "annual", "10", "10 every year",
            "到2022年,每年引进10个高水平科技团队", "10个"),
    "K13": ("高校协同创新中心", "个", "cumulative", "10", "10 by 2022",
            "到2022年,建成10个高校协同创新中心、10个产教融合示范基地", "10个"),
    "K14": ("产教融合示范基地", "个", "cumulative", "10", "10 by 2022",
            "到2022年,建成10个高校协同创新中心、10个产教融合示范基地", "10个"),
    "K15": ('"卡脖子"核心技术攻关项目 (年)', "项", "annual", "10", "10 every year",
            "到2022年,每年开展10项左右“卡脖子”核心技术攻关项目", "10项"),
    "K16": ("标志性重点区块", "个", "cumulative", "10", "≥ 10 by 2022",
            "全市集中资源打造形成10个以上科创资源集聚、区域创新引领作用显著的标志性重点区块", "10个"),
    "K17": ("知识产权质押融资额 (亿元, 年)", "亿元", "none", "", "tracked, no target", None, None),
    "K18": ("质押融资企业数 (年)", "家", "none", "", "tracked, no target", None, None),
}


def _rows(name: str) -> list[dict[str, str]]:
    with (SEEDS / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


TARGETS = {r["kpi_code"]: r for r in _rows("kpi_targets")}


def test_the_catalogue_is_the_18_kpis_of_kpis_md():
    assert list(TARGETS) == list(SPEC)


@pytest.mark.parametrize("code", list(SPEC))
def test_a_kpis_name_unit_and_target_are_the_specifications(code):
    name, unit, kind, target, text, quote, stated = SPEC[code]
    row = TARGETS[code]
    assert (row["indicator_name"], row["unit"], row["target_kind"], row["target_text"]) == (name, unit, kind, text)
    if kind == "none":
        assert row["corridor_target"] == "" and quote is None
        return
    assert Decimal(row["corridor_target"]) == Decimal(target)
    # the plan's sentence gives that number, in the seed's unit (K03: a fraction of 30 %; K06: 名 = 人)
    assert stated in quote
    number = Decimal(stated.rstrip("%家个项名万平方米"))
    assert Decimal(target) == (number / 100 if stated.endswith("%") else number)
    assert stated.endswith({"比率": "%", "人": "名"}.get(unit, unit))
    # "by 2022" is paced over the window; "every year" within the year, a rate not at all (kpis.md)
    assert (row["pacing"], row["area_target_method"]) == {
        ("cumulative", "count"): ("window_linear", "allocated"),
        ("cumulative", "sum"): ("window_linear", "allocated"),
        ("annual", "count"): ("year_linear", "allocated"),
        ("annual", "rate"): ("none", "uniform"),
    }[(kind, row["measure_type"])]


def test_the_shipped_split_of_the_targets_is_equal():
    """Every area of every allocated KPI weighs the same (kpis.md: "for example an equal split"): a stray
    weight would move every area target of that KPI, and the oracle reads the same seed."""
    weights: dict[str, dict[str, Decimal]] = {}
    for r in _rows("kpi_area_allocation"):
        weights.setdefault(r["kpi_code"], {})[r["area_code"]] = Decimal(r["allocation_weight"])
    allocated = [c for c, r in TARGETS.items() if r["area_target_method"] == "allocated" and r["target_kind"] != "none"]
    assert set(weights) <= set(allocated)
    for code in allocated:
        split = {a: weights.get(code, {}).get(a, Decimal(1)) for a in AREAS}  # a missing row weighs 1
        assert len(set(split.values())) == 1 and split["LW"] > 0, (code, split)


def test_the_shipped_ranking_weights_are_equal():
    """kpis.md: "weights in configuration (default equal)" over the KPIs with a target."""
    with_target = {c for c, r in TARGETS.items() if r["target_kind"] != "none"}
    weights = {r["kpi_code"]: Decimal(r["ranking_weight"]) for r in _rows("kpi_weights")}
    assert set(weights) <= with_target
    assert {weights.get(c, Decimal(1)) for c in with_target} == {Decimal(1)}
