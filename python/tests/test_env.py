"""from_env reads the variables the privalytics CLI reads."""

from __future__ import annotations

import os
import unittest
from unittest import mock

from privalytics import DEFAULT_SERVER, Client, PrivalyticsError


class EnvTest(unittest.TestCase):
    def test_same_variables_as_the_cli(self) -> None:
        with mock.patch.dict(os.environ, {"PRIVALYTICS_SERVER": "http://127.0.0.1:9090/", "PRIVALYTICS_API_KEY": "pvk_x"}, clear=False):
            pv = Client.from_env()
        self.assertEqual((pv.server, pv.api_key), ("http://127.0.0.1:9090", "pvk_x"))

    def test_default_server(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PRIVALYTICS_SERVER"}
        env["PRIVALYTICS_API_KEY"] = "pvk_x"
        with mock.patch.dict(os.environ, env, clear=True):
            self.assertEqual(Client.from_env().server, DEFAULT_SERVER)

    def test_missing_key_says_what_to_set(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PRIVALYTICS_API_KEY"}
        with mock.patch.dict(os.environ, env, clear=True):
            with self.assertRaisesRegex(PrivalyticsError, "PRIVALYTICS_API_KEY"):
                Client.from_env()


if __name__ == "__main__":
    unittest.main()
