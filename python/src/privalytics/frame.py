"""Query answers as pandas DataFrames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pandas is optional: only to_frame needs it
    import pandas


def to_frame(result: Mapping[str, Any]) -> "pandas.DataFrame":
    """One row per released group: a column per group key, then for each
    aggregate its value and interval as "<name>", "<name>_lower" and
    "<name>_upper". Rows are sorted by the group keys. A result with no released
    group (every key suppressed by partition selection) gives an empty frame
    that still has every column, so code reading it does not break. An answer
    with rollup gets a "subtotal" column after the keys: 0 for the released
    groups, 1, 2, … for its subtotals (how many of the last keys they sum over;
    those keys are ""), which sort after the groups. An answer with a cell the
    server marked hidden (too few customers for its epsilon, or mostly bias:
    read it as unknown) gets a "<name>_hidden" column after each aggregate's
    interval, True for those cells."""
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("to_frame needs pandas: pip install 'privalytics[pandas]' or apt-get install python3-pandas") from e

    group_by = list(result.get("group_by") or [])
    names = [a.get("name") or a.get("op", f"aggregate{i}") for i, a in enumerate(result.get("aggregates") or [])]
    rollup = any("subtotal" in r for r in result.get("rows") or [])
    hidden = any(c.get("hidden") for r in result.get("rows") or [] for c in r.get("cells") or [])
    columns = list(group_by) + (["subtotal"] if rollup else [])
    for n in names:
        columns += [n, n + "_lower", n + "_upper"] + ([n + "_hidden"] if hidden else [])
    rows = []
    for r in result.get("rows") or []:
        row = dict(zip(group_by, r.get("key") or []))
        if rollup:
            row["subtotal"] = r.get("subtotal", 0)
        for n, cell in zip(names, r.get("cells") or []):
            # The server sends 0 as 0; .get keeps a frame whole if an older server omitted it.
            row[n] = cell.get("value", 0)
            row[n + "_lower"] = cell.get("lower", 0)
            row[n + "_upper"] = cell.get("upper", 0)
            if hidden:
                row[n + "_hidden"] = bool(cell.get("hidden", False))
        rows.append(row)
    df = pd.DataFrame(rows, columns=columns)
    if group_by and not df.empty:
        df = df.sort_values((["subtotal"] if rollup else []) + group_by).reset_index(drop=True)
    return df
