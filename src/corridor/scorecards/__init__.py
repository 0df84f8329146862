"""Scorecards (指标完成情况) for the six areas and the corridor office, at the plan's rhythm.

月度例会 (monthly), 季度观摩 (quarterly) and 年度比拼 (year-end, with the
ranking of the six areas), each for ``ALL`` (the corridor) and every area, in
three formats: PDF (A4, Noto Sans CJK SC embedded), XLSX (numbers as numbers,
text safe from formula injection, native charts) and one self-contained HTML
file (phones).

- `render(url, edition=..., period_start=..., area=..., gate=..., out_dir=...)`:
  one scorecard in three formats, nothing recorded.
- `publish(url, out_dir, gate=..., ...)`: gated, recorded in
  ``ops.scorecard_editions`` (frozen), e-mailed via the Airflow SMTP provider.
- `deliver(url, result)`: the e-mail of a ``publish(..., send=False)``, for a
  caller holding the warehouse's read lock around its publications (sent
  after it is released: a slow mail server never holds a build back).
- `follow_up_provisional(url, out_dir, gate=...)`: the final edition (n + 1)
  of each provisional edition whose period is complete now (after a rebuild).
- `editions_due(logical_date)`: which (edition, period_start) a publish run
  publishes (its cron, `0 9 12 * *` Asia/Shanghai, is the publish DAG's:
  dags/publish_scorecards.py).
"""

from corridor.scorecards.completeness import Completeness
from corridor.scorecards.data import PeriodNotAvailable, Scorecard, latest_period, load_scorecard
from corridor.scorecards.editions import (
    EDITIONS,
    TIMEZONE,
    editions_due,
)
from corridor.scorecards.fonts import FontMissing
from corridor.scorecards.gate import GateBlocked, check_gate, normalise_gate
from corridor.scorecards.publish import (
    FORMATS,
    PublishedScorecard,
    PublishResult,
    deliver,
    deliver_all,
    follow_up_provisional,
    format_publish_result,
    publish,
    render,
)

__all__ = [
    "EDITIONS", "FORMATS", "TIMEZONE", "Completeness", "FontMissing",
    "GateBlocked", "PeriodNotAvailable", "PublishResult", "PublishedScorecard", "Scorecard",
    "check_gate", "deliver", "deliver_all", "editions_due", "follow_up_provisional", "format_publish_result", "normalise_gate", "latest_period", "load_scorecard", "publish", "render",
]
