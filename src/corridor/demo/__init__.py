"""Demo data for the corridor warehouse: the four source feeds, dirty as in real life.

``generate(landing_dir, seed=..., scale="city", start="2019-01", end="2022-12")`` writes
``district/``, ``techmarket/``, ``bank/`` and ``hr/`` exactly as ``shared/feeds/README.md``
specifies, plus ``_demo/manifest.jsonl`` (one line per planted dirty record or scenario,
with what the pipeline is expected to do with it) and ``_demo/summary.json``.
"""

from corridor.demo.context import SCALES
from corridor.demo.generator import DEMO_DIR, FEED_ORDER, DemoSummary, generate, main

__all__ = ["DEMO_DIR", "FEED_ORDER", "SCALES", "DemoSummary", "generate", "main"]
