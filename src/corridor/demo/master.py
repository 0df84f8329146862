"""Stable master data shared by the four feeds: enterprises, institutions, people.

An enterprise is a number within its area. Its USCC and name are pure
functions of (seed, area, number), so every feed sees the same enterprise
under the same code and name without the pool being held in memory.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from functools import lru_cache

from corridor.demo.ids import id_check_char, make_uscc
from corridor.demo.vocab import (
    AREA_BY_CODE,
    AREA_LIST,
    AREA_PLACES,
    GIVEN_CHARS,
    ID_REGIONS,
    INSTITUTIONS,
    NAME_CORES,
    NAME_INDUSTRIES,
    NAME_PLACES,
    NAME_SUFFIXES,
    RARE_CORES,
    SURNAMES,
)

_MASK = (1 << 64) - 1
# The USCC "middle" (first characters of the organisation code) per area: the two
# areas registered at city level (330300) get different ones so codes never clash.
_MIDDLE = {"LW": "MA2", "OH": "MA2", "YQ": "MA2", "RA": "MA2", "ZN": "MA5", "OJK": "MA7"}
_CORE_CHARS = "德力华泰正瑞康宏安精恒盛嘉诚邦启明晨博远信鼎聚英创鸿睿科达源众合蓝星东天成金宝越海普迈卓优胜明道益立光和同兴翔凯汇通凌云晶锐贝"


def mix(*parts: int) -> int:
    """splitmix64 over the parts: a fast deterministic hash of small integers."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (p & _MASK)) & _MASK
        x = (x + 0x9E3779B97F4A7C15) & _MASK
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
        x ^= x >> 31
    return x


class Enterprises:
    """The enterprises of the corridor (and their buyers elsewhere), as functions of a number."""

    def __init__(self, seed: int):
        self.seed = seed
        self._area_key = {a.code: i + 1 for i, a in enumerate(AREA_LIST)}
        self._offset = {a.code: mix(seed, 11, i) % (31 ** 6) for i, a in enumerate(AREA_LIST)}
        self.uscc = lru_cache(maxsize=65536)(self._uscc)
        self.name = lru_cache(maxsize=65536)(self._name)

    def _uscc(self, area: str, n: int) -> str:
        return make_uscc("91" + AREA_BY_CODE[area].admin, n, self._offset[area], _MIDDLE[area])

    def _name(self, area: str, n: int) -> str:
        h = mix(self.seed, 23, self._area_key[area], n)
        if h % 211 == 0:
            core = RARE_CORES[(h >> 8) % len(RARE_CORES)]
        elif h % 3 == 0:
            core = NAME_CORES[(h >> 8) % len(NAME_CORES)]
        else:
            a = _CORE_CHARS[(h >> 8) % len(_CORE_CHARS)]
            b = _CORE_CHARS[(h >> 16) % len(_CORE_CHARS)]
            core = a + b if a != b else a + "信"
        places = AREA_PLACES[area] if (h >> 48) % 10 < 7 else NAME_PLACES
        place = places[(h >> 24) % len(places)]
        industry = NAME_INDUSTRIES[(h >> 32) % len(NAME_INDUSTRIES)]
        suffix = NAME_SUFFIXES[(h >> 40) % len(NAME_SUFFIXES)]
        return f"{place}{core}{industry}{suffix}"

    def short(self, area: str, n: int) -> str:
        """The name without place and legal form (for platform names)."""
        name = self.name(area, n)
        for p in sorted({*NAME_PLACES, *AREA_PLACES[area]}, key=len, reverse=True):
            if name.startswith(p):
                name = name[len(p):]
                break
        for s in ("集团有限公司", "股份有限公司", "有限公司"):
            if name.endswith(s):
                return name[: -len(s)]
        return name

    def buyer(self, prefix8: str, place_word: str, n: int) -> tuple[str, str]:
        """A buyer outside the corridor: (USCC, name)."""
        h = mix(self.seed, 37, n)
        code = make_uscc(prefix8, n, h % (31 ** 6), "MA1")
        core = _CORE_CHARS[(h >> 8) % len(_CORE_CHARS)] + _CORE_CHARS[(h >> 16) % len(_CORE_CHARS)]
        industry = NAME_INDUSTRIES[(h >> 32) % len(NAME_INDUSTRIES)]
        suffix = NAME_SUFFIXES[(h >> 40) % len(NAME_SUFFIXES)]
        return code, f"{place_word}{core}{industry}{suffix}"

    def institution(self, i: int) -> tuple[str, str]:
        """(name, USCC) of the i-th university or institute (事业单位 / 民办非企业: ``12…MB…``, ``52…MJ…``)."""
        name, prefix = INSTITUTIONS[i % len(INSTITUTIONS)]
        k = i % len(INSTITUTIONS)
        return name, make_uscc(prefix, k, mix(self.seed, 41, k) % (31 ** 6), "MB0" if prefix[0] == "1" else "MJ0")


def person_name(rng: random.Random) -> str:
    r = rng.random()
    surname = SURNAMES[int(len(SURNAMES) * r * r)] if r < 0.995 else "诸葛"
    n = 1 if rng.random() < 0.3 else 2
    return surname + "".join(GIVEN_CHARS[rng.randrange(len(GIVEN_CHARS))] for _ in range(n))


def mobile(rng: random.Random) -> str:
    return rng.choice(("13", "15", "18", "17", "19")) + f"{rng.randrange(10**9):09d}"


class People:
    """Resident ID numbers, unique within a run (GB 11643-1999, Wenzhou regions)."""

    def __init__(self) -> None:
        self._issued: set[int] = set()

    def new_id(self, rng: random.Random, birth_from: date, birth_to: date, *, want_x: bool = False) -> str:
        span = (birth_to - birth_from).days
        while True:
            region = ID_REGIONS[rng.randrange(len(ID_REGIONS))]
            birth = birth_from + timedelta(days=rng.randrange(max(1, span)))
            seq = rng.randrange(1, 1000)
            first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
            key = int(first17)
            if key in self._issued:
                continue
            check = id_check_char(first17)
            if want_x and check != "X":
                continue
            self._issued.add(key)
            return first17 + check
