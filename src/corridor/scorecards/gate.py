"""The quality gate's result, as the scorecards read it (and refuse to publish without)."""

from __future__ import annotations


class GateBlocked(RuntimeError):
    """The quality gate blocks publication."""


def normalise_gate(gate) -> dict | None:
    """The gate as the scorecards read it: blocking, outcome, suites, expectations, failed, warnings, data_docs
    and, when the gate said, build_id.

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
    normal = {"blocking": blocking, "outcome": outcome, "suites": count("suites"),
              "expectations": count("expectations"), "failed": count("failed"), "warnings": warnings,
              "data_docs": gate.get("data_docs") or gate.get("data_docs_path")}
    if "build_id" in gate:  # the dbt build it validated (None: no recorded build); absent: a gate that did not say
        normal["build_id"] = gate["build_id"]
    return normal


def check_gate(gate) -> dict:
    """The normalised gate; raise GateBlocked unless it lets publication go ahead (fail closed)."""
    normal = normalise_gate(gate)
    if normal is None:
        raise GateBlocked("no quality gate result: publication needs the gate's outcome")
    if normal["blocking"]:
        raise GateBlocked(f"quality gate blocks publication (outcome {normal['outcome']!r}, "
                          f"{normal['failed'] if normal['failed'] is not None else '?'} failed expectations)")
    return normal


def check_gate_is_current(url: str, gate: dict) -> None:
    """Raise GateBlocked unless ``gate`` validated the warehouse as it is now: built, with no dbt command
    having written models since the last successful whole build (``check_warehouse_built``), and that build
    the one the gate validated. Call it under ``transform.warehouse_read``, which keeps builds out until the
    publication has read what it publishes."""
    from corridor import transform
    from corridor.orchestration.tasks import WarehouseNotBuilt, check_warehouse_built

    try:
        check_warehouse_built(url)
    except WarehouseNotBuilt as exc:
        raise GateBlocked(str(exc)) from None
    if "build_id" not in gate:
        raise GateBlocked("the quality gate's result does not say which dbt build it validated (a result of an "
                          "earlier version?): run the quality gate again before publishing")
    current = transform.last_build_id(url)
    if gate["build_id"] != current:
        def build(build_id) -> str:
            return "no build recorded" if build_id is None else f"dbt build {build_id}"

        raise GateBlocked(f"the warehouse was rebuilt after the quality gate validated it (the gate validated "
                          f"{build(gate['build_id'])}, the warehouse now holds {build(current)} of ops.dbt_builds):"
                          " publication needs a gate of what it publishes; run the quality gate again")
