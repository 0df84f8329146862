"""The quality gate's result, as the scorecards read it (and refuse to publish without)."""

from __future__ import annotations


class GateBlocked(RuntimeError):
    """The quality gate blocks publication."""


def normalise_gate(gate) -> dict | None:
    """The gate as the scorecards read it: blocking, outcome, suites, expectations, failed, warnings, data_docs.

    Accepts that dict, a ``corridor.quality`` report (anything with ``as_dict()``)
    or its dict (counts under ``totals``, ``data_docs_path``); derives
    ``outcome`` when absent. None stays None.
    """
    if gate is None:
        return None
    if not isinstance(gate, dict) and hasattr(gate, "as_dict"):
        gate = gate.as_dict()
    if not isinstance(gate, dict):
        raise TypeError(f"gate must be a dict (or a quality report), not {type(gate).__name__}")
    totals = gate.get("totals") if isinstance(gate.get("totals"), dict) else {}

    def count(key: str):
        value = gate.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else totals.get(key)

    blocking = bool(gate.get("blocking", True))  # fail closed
    warnings = count("warnings")
    outcome = gate.get("outcome") or ("failed" if blocking else "passed_with_warnings" if warnings else "passed")
    return {"blocking": blocking, "outcome": outcome, "suites": count("suites"),
            "expectations": count("expectations"), "failed": count("failed"), "warnings": warnings,
            "data_docs": gate.get("data_docs") or gate.get("data_docs_path")}


def check_gate(gate) -> dict:
    """The normalised gate; raise GateBlocked unless it lets publication go ahead (fail closed)."""
    normal = normalise_gate(gate)
    if normal is None:
        raise GateBlocked("no quality gate result: publication needs the gate's outcome")
    if normal["blocking"]:
        raise GateBlocked(f"quality gate blocks publication (outcome {normal['outcome']!r}, "
                          f"{normal['failed'] if normal['failed'] is not None else '?'} failed expectations)")
    return normal
