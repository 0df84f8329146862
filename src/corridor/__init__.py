"""The corridor warehouse: ingestion, quality and scorecards for 环大罗山科创走廊."""

__version__ = "0.1.0"
