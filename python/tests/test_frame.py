"""to_frame on fixed answers (pandas from Debian's python3-pandas)."""

from __future__ import annotations

import unittest

try:
    import pandas  # noqa: F401

    HAVE_PANDAS = True
except ImportError:
    HAVE_PANDAS = False

from privalytics import to_frame

RESULT = {
    "group_by": ["month"],
    "aggregates": [{"name": "purchases", "op": "count"}, {"name": "revenue", "op": "sum"}],
    "rows": [
        {"key": ["2026-02"], "cells": [{"value": 12, "lower": 8, "upper": 16}, {"value": 0, "lower": -3.5, "upper": 3.5}]},
        {"key": ["2026-01"], "cells": [{"value": 10, "lower": 6, "upper": 14}, {"value": 250.5, "lower": 240, "upper": 261}]},
    ],
}


@unittest.skipUnless(HAVE_PANDAS, "to_frame needs pandas: apt-get install python3-pandas")
class ToFrameTest(unittest.TestCase):
    def test_one_row_per_group_sorted(self) -> None:
        df = to_frame(RESULT)
        self.assertEqual(list(df.columns), ["month", "purchases", "purchases_lower", "purchases_upper", "revenue", "revenue_lower", "revenue_upper"])
        self.assertEqual(list(df["month"]), ["2026-01", "2026-02"])
        self.assertEqual(list(df["revenue"]), [250.5, 0])
        self.assertEqual(list(df["revenue_lower"]), [240, -3.5])

    def test_no_released_group_keeps_the_columns(self) -> None:
        df = to_frame({**RESULT, "rows": []})
        self.assertTrue(df.empty)
        self.assertIn("revenue_upper", df.columns)

    def test_rollup_subtotals_after_the_groups(self) -> None:
        rows = [
            {"key": ["2026-01", "web"], "cells": [{"value": 4, "lower": 1, "upper": 7}]},
            {"key": ["", ""], "cells": [{"value": 9, "lower": 4, "upper": 14}], "subtotal": 2},
            {"key": ["2026-01", ""], "cells": [{"value": 9, "lower": 4, "upper": 14}], "subtotal": 1},
            {"key": ["2026-01", "app"], "cells": [{"value": 5, "lower": 2, "upper": 8}]},
        ]
        df = to_frame({"group_by": ["month", "channel"], "aggregates": [{"name": "n", "op": "count"}], "rows": rows})
        self.assertEqual(list(df.columns), ["month", "channel", "subtotal", "n", "n_lower", "n_upper"])
        self.assertEqual(list(df["subtotal"]), [0, 0, 1, 2])
        self.assertEqual(list(df["channel"]), ["app", "web", "", ""])
        self.assertEqual(df[df["subtotal"] == 0]["n"].sum(), df[df["subtotal"] == 1]["n"].iloc[0])
        self.assertNotIn("subtotal", to_frame(RESULT).columns)

    def test_hidden_cells_get_a_column(self) -> None:
        rows = [
            {"key": ["web"], "cells": [{"value": 900, "lower": 800, "upper": 1000}]},
            {"key": ["app"], "cells": [{"value": 12, "lower": 0, "upper": 112, "hidden": True, "reason": "too few customers for this ε"}]},
        ]
        df = to_frame({"group_by": ["channel"], "aggregates": [{"name": "revenue", "op": "sum"}], "rows": rows})
        self.assertEqual(list(df.columns), ["channel", "revenue", "revenue_lower", "revenue_upper", "revenue_hidden"])
        self.assertEqual(list(df["channel"]), ["app", "web"])
        self.assertEqual(list(df["revenue_hidden"]), [True, False])
        self.assertNotIn("revenue_hidden", to_frame(RESULT).columns)

    def test_ungrouped(self) -> None:
        df = to_frame({"group_by": [], "aggregates": [{"op": "count"}], "rows": [{"key": [], "cells": [{"value": 3, "lower": 1, "upper": 5}]}]})
        self.assertEqual(df.iloc[0]["count"], 3)


if __name__ == "__main__":
    unittest.main()
