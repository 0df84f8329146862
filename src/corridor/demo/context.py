"""What every feed generator shares: the run's parameters, master data, manifest and statistics."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from corridor.config import DEMO_SCALES
from corridor.demo.dirty import Manifest
from corridor.demo.master import Enterprises, People
from corridor.demo.periods import index_month

SCALES = DEMO_SCALES  # corridor.config: CORRIDOR_DEMO_SCALE names one

# Yearly volumes of the corridor at city scale (calibrated on the spec's "Realistic
# magnitudes" and the KPI targets). Years outside 2019..2022 are extrapolated.
YEARLY = {
    "contracts": {2019: 5900, 2020: 6550, 2021: 7250, 2022: 7850},
    "ht_new": {2019: 275, 2020: 305, 2021: 335, 2022: 370},
    "sme_new": {2019: 1120, 2020: 1210, 2021: 1300, 2022: 1380},
    "gazelle": {2019: 6, 2020: 7, 2021: 8, 2022: 8},
    "leader": {2019: 2, 2020: 3, 2021: 3, 2022: 4},
    "talents": {2019: 700, 2020: 760, 2021: 820, 2022: 880},
    "teams": {2019: 9, 2020: 10, 2021: 11, 2022: 10},
    "loans": {2019: 380, 2020: 460, 2021: 530, 2022: 575},
}
POOL_CITY = 15_000  # enterprises in the corridor at city scale


def yearly(metric: str, year: int) -> float:
    table = YEARLY[metric]
    if year in table:
        return float(table[year])
    if year < 2019:
        return table[2019] * 0.9 ** (2019 - year)
    return table[2022] * 1.08 ** (year - 2022)


class Quota:
    """Turns an expected (fractional) count per period into whole counts, carrying the remainder."""

    __slots__ = ("acc",)

    def __init__(self, rng: random.Random):
        self.acc = rng.random()

    def take(self, expected: float) -> int:
        self.acc += expected
        n = int(self.acc)
        self.acc -= n
        return n


def weighted(rng: random.Random, pairs) -> str:
    r = rng.random() * sum(w for _, w in pairs)
    for value, w in pairs:
        r -= w
        if r < 0:
            return value
    return pairs[-1][0]


@dataclass
class Context:
    landing: Path
    seed: int
    scale: str
    factor: int
    start_idx: int
    end_idx: int
    manifest: Manifest
    enterprises: Enterprises
    people: People = field(default_factory=People)
    per_year: dict[int, Counter] = field(default_factory=dict)
    kpi: dict[str, object] = field(default_factory=dict)
    feed_rows: Counter = field(default_factory=Counter)
    feed_files: Counter = field(default_factory=Counter)
    tick: Callable[[], None] = field(default=lambda: None, repr=False)  # one month of the feed done

    def months(self) -> Iterator[int]:
        """The period's month indexes; ``tick`` is called as each month's work is finished."""
        for idx in range(self.start_idx, self.end_idx + 1):
            yield idx
            self.tick()

    def rng(self, *label: object) -> random.Random:
        return random.Random(":".join(str(x) for x in (self.seed, *label)))

    def count(self, year: int, metric: str, n: int = 1) -> None:
        self.per_year.setdefault(year, Counter())[metric] += n

    def pool(self, weight: float) -> int:
        return max(50, round(POOL_CITY * weight * self.factor))

    @property
    def years(self) -> range:
        return range(index_month(self.start_idx)[0], index_month(self.end_idx)[0] + 1)
