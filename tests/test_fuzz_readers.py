"""The fast readers against their reference paths on mutated demo files (``tests/fuzz_readers.py``): a fixed
seed and number of rounds here; longer campaigns with ``python -m tests.fuzz_readers``."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest

from corridor.demo import generate
from corridor.feeds import _fast
from corridor.feeds.techmarket import FAST as TECH_FAST
from tests import fuzz_readers

SEED = 20261207


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("demo")
    generate(landing, scale="city", start="2021-01", end="2021-12")
    return landing


@pytest.mark.parametrize(("feed", "rounds"), [("techmarket", 150), ("bank", 150), ("hr", 100), ("district", 50)])
def test_the_fast_readers_give_what_the_reference_gives_on_mutated_demo_files(feed, rounds, demo, columns,
                                                                               tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns of every out-of-range date it reads as #VALUE!
        campaign = fuzz_readers.run(feed, sorted((demo / feed).iterdir()), random.Random(SEED), columns, tmp_path,
                                    rounds=rounds)
    assert not campaign.failures, "\n".join(campaign.failures)
    assert campaign.rounds == rounds and campaign.files >= rounds
    fast, of = campaign.counted
    # both sides were exercised: most rows (workbooks) took the fast reader, and the mutations sent some away
    if feed == "district":
        assert 0.1 * of < fast < of, f"calamine read {fast} of {of} mutated workbooks"
    else:
        assert 0.5 * of < fast < 0.98 * of, f"the fast path took {fast} of {of} rows"


def test_the_fuzz_finds_a_fast_rule_that_differs(demo, columns, monkeypatch, tmp_path):
    """It can fail: a fast rule that strips only ASCII whitespace from a text (the per-row rule strips every kind)
    is found within a few rounds."""
    kinds = dict(TECH_FAST.kinds)
    convert = _fast.convert

    def ascii_strip(e, kind, required, lenient=False):
        if kind.name == "text":
            v = e.str.strip_chars(" \t")
            return _fast.Col(v, v.fill_null("\x00"), _fast.pl.lit(True))
        return convert(e, kind, required, lenient)

    monkeypatch.setattr(TECH_FAST, "kinds", kinds)
    monkeypatch.setattr(_fast, "convert", ascii_strip)
    files = sorted((demo / "techmarket").iterdir())
    campaign = fuzz_readers.run("techmarket", files, random.Random(SEED), columns, tmp_path, rounds=40)
    assert campaign.failures and "differs between the fast and the per-row path" in campaign.failures[0]
