"""Every kind of call against a live server (started by the Go test
cmd/privalytics TestPythonPackage, which sets PRIVALYTICS_SERVER and
PRIVALYTICS_OPERATOR_KEY). Each run makes a tenant of its own."""

from __future__ import annotations

import os
import re
import secrets
import sys
import unittest

import privalytics
from privalytics import OPERATIONS, Client, PrivalyticsError

SERVER = os.environ.get("PRIVALYTICS_SERVER", "")
OPERATOR = os.environ.get("PRIVALYTICS_OPERATOR_KEY", "")
MISSING = "needs a live server: set PRIVALYTICS_SERVER and PRIVALYTICS_OPERATOR_KEY (go test ./cmd/privalytics -run TestPythonPackage does)"
if os.environ.get("PRIVALYTICS_REQUIRE_LIVE") and not (SERVER and OPERATOR):
    raise RuntimeError(MISSING)

CHANNELS = ["web", "app", "store"]


def _events():
    # 300 customers, each with a purchase in January 2026 through one channel.
    for i in range(300):
        yield {"customer_id": f"c{i}", "ts": f"2026-01-{1 + i % 28:02d}T12:00:00Z", "type": "purchase",
               "channel": CHANNELS[i % 3], "category": "bread", "amount": 2.5, "quantity": 1, "country": "GB"}


def _by_channel(epsilon):
    return {
        "where": [{"column": "type", "eq": "purchase"}],
        "group_by": [{"column": "channel", "keys": CHANNELS}],
        "aggregates": [{"name": "buyers", "op": "count"}],
        "bounds": {"max_groups": 1, "max_rows_per_group": 1},
        "epsilon": epsilon,
    }


@unittest.skipUnless(SERVER and OPERATOR, MISSING)
class LiveTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.operator = Client(SERVER, OPERATOR)
        cls.tenant_id = "py-" + secrets.token_hex(4)
        created = cls.operator.create_tenant(cls.tenant_id, {"epsilon": 5, "delta": 1e-5}, name="Python SDK test", period="lifetime")
        cls.admin = cls.operator.with_key(created["admin_key"]["token"])
        cls.ingest = cls.admin.with_key(cls.admin.create_key("ingest", "ingest")["token"])
        cls.query = cls.admin.with_key(cls.admin.create_key("analyst", "query")["token"])
        got = cls.ingest.ingest_events(list(_events()), idempotency_key="batch-1")
        assert got["rows"] == 300, got

    def test_installed_package_is_the_one_tested(self) -> None:
        # The Go test installs the package into a fresh virtualenv; the tests must not import python/src.
        self.assertTrue(privalytics.__file__.startswith(sys.prefix), f"{privalytics.__file__} is not under {sys.prefix}")

    def test_every_operation_of_the_served_spec_has_a_method(self) -> None:
        spec = self.operator.openapi_spec()
        ids = set(re.findall(r"^\s*operationId:\s*(\w+)\s*$", spec, re.M))
        self.assertGreater(len(ids), 40)
        self.assertEqual(ids - set(OPERATIONS), set(), "operations without a Python method")
        self.assertEqual(set(OPERATIONS) - ids, set(), "methods for operations the spec no longer has")
        for op, method in OPERATIONS.items():
            self.assertTrue(callable(getattr(Client, method, None)), f"{op}: Client.{method} missing")

    def test_service_routes(self) -> None:
        self.assertEqual(self.operator.health()["status"], "ok")
        self.assertTrue(self.operator.ready())
        self.assertIn("privalytics_", self.operator.metrics())
        self.assertEqual(self.operator.dashboard_file(), "/dashboard/")
        self.assertIn(b"<html", self.operator.dashboard_file("").lower())

    def test_views_dashboards_and_share_links(self) -> None:
        spec = {"name": "buyers per month", "cadence": "month", "epsilon": 0.01, "start": "2026-01-01",
                "query": {k: v for k, v in _by_channel(0).items() if k != "epsilon"}}
        cost = self.query.preview_view(spec)
        self.assertTrue(cost["fits"], cost)
        self.assertIn("per month", cost["message"])
        view = self.query.create_view(spec)
        self.assertIn(view["id"], [v["id"] for v in self.query.views()])
        self.assertEqual(self.query.view(view["id"])["cadence"], "month")
        releases = self.query.view_releases(view["id"], "2026-01-01", "2026-01-31")
        self.assertEqual([r["bucket"] for r in releases], ["2026-01"])
        self.assertEqual(releases[0]["state"], "closed")
        # A closed release reads the same every time, at no cost.
        spent = self.query.budget()["spent"]["epsilon"]
        self.assertEqual(self.query.view_releases(view["id"], "2026-01-01", "2026-01-31"), releases)
        self.assertEqual(self.query.budget()["spent"]["epsilon"], spent)
        rows = self.query.view_rollup(view["id"], "year")
        self.assertIn("2026", [r["bucket"] for r in rows])
        dash = self.query.create_dashboard("py", [view["id"]])
        self.assertIn(dash["id"], [d["id"] for d in self.query.dashboards()])
        link = self.query.share_dashboard(dash["id"])
        shared = self.query.with_key(link["token"])
        self.assertEqual(shared.dashboard(dash["id"])["view_ids"], [view["id"]])
        self.assertEqual(len(shared.view_releases(view["id"], "2026-01-01", "2026-01-31")), 1)
        with self.assertRaises(PrivalyticsError) as refused:
            shared.budget()
        self.assertEqual(refused.exception.status, 403)
        self.query.revoke_share(dash["id"], link["id"])
        self.query.delete_dashboard(dash["id"])
        self.query.delete_view(view["id"])

    def test_tenant_and_keys(self) -> None:
        self.assertEqual(self.admin.tenant()["id"], self.tenant_id)
        self.assertEqual(self.operator.get_tenant(self.tenant_id)["name"], "Python SDK test")
        self.assertIn(self.tenant_id, [tn["id"] for tn in self.operator.list_tenants()])
        key = self.admin.create_key("temp", "query")
        self.assertTrue(key["token"].startswith("pvk_"))
        self.assertIn(key["id"], [k["id"] for k in self.admin.list_keys()])
        share = self.admin.set_key_budget(key["id"], {"epsilon": 0.5})
        self.assertEqual(share["total"]["epsilon"], 0.5)
        self.admin.revoke_key(key["id"])
        with self.assertRaises(PrivalyticsError) as cm:
            self.admin.with_key(key["token"]).budget()
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))

    def test_query_explain_cache_and_budget(self) -> None:
        plan = self.query.explain(_by_channel(0.5))
        self.assertEqual(plan["cost"]["epsilon"], 0.5)
        self.assertGreater(plan["aggregates"][0]["half_width"], 0)
        before = self.query.budget()["spent"].get("epsilon", 0)

        res = self.query.query(_by_channel(0.5))
        self.assertEqual([r["key"] for r in res["rows"]], [["app"], ["store"], ["web"]])
        for r in res["rows"]:
            c = r["cells"][0]
            self.assertLessEqual(c["lower"], c["value"])
            self.assertLessEqual(c["value"], c["upper"])
        spent = self.query.budget()["spent"]["epsilon"]
        self.assertAlmostEqual(spent - before, 0.5)

        again = self.query.query(_by_channel(0.5))
        self.assertTrue(again.get("cached"), "a repeat on an unchanged snapshot is answered from the cache")
        self.assertEqual(again["rows"], res["rows"])
        self.assertAlmostEqual(self.query.budget()["spent"]["epsilon"], spent, msg="a cached answer is free")
        self.assertTrue(any(abs(c["cost"]["epsilon"] - 0.5) < 1e-9 for c in self.query.charges()))

        frame = privalytics.to_frame(res)
        self.assertEqual(list(frame["channel"]), ["app", "store", "web"])

    def test_sql(self) -> None:
        sql = ("SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 0.25, max_groups_contributed = 1) "
               "COUNT(*) AS n FROM events WHERE type = 'purchase'")
        self.assertEqual(self.query.explain_sql(sql)["cost"]["epsilon"], 0.25)
        res = self.query.sql(sql)
        self.assertEqual(len(res["rows"]), 1)

    def test_errors_say_what_to_change(self) -> None:
        with self.assertRaises(PrivalyticsError) as cm:
            self.query.query({"aggregates": [{"op": "sum", "column": "no_such_column", "lower": 0, "upper": 1}], "epsilon": 0.1})
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "invalid"))
        self.assertIn("no_such_column", cm.exception.message)
        self.assertTrue(cm.exception.request_id)

        with self.assertRaises(PrivalyticsError) as cm:
            self.query.query(_by_channel(1000))
        self.assertEqual((cm.exception.status, cm.exception.code), (403, "budget"))

        with self.assertRaises(PrivalyticsError) as cm:
            self.query.create_key("x", "admin")
        self.assertEqual(cm.exception.code, "forbidden")

    def test_budget_grants(self) -> None:
        total = self.admin.budget()["total"]["epsilon"]
        after = self.admin.grant_budget({"epsilon": 1})
        self.assertAlmostEqual(after["total"]["epsilon"], total + 1)
        self.assertEqual(self.admin.budget_changes()[0]["kind"], "grant")

    def test_imports(self) -> None:
        csv = "customer_id,ts,type,channel\nimp1,2026-01-05T10:00:00Z,visit,web\nimp2,2026-01-06T10:00:00Z,visit,app\n"
        got = self.ingest.import_file(csv.encode(), format="csv")
        self.assertEqual(got["rows"], 2)
        self.assertEqual(self.ingest.ingest_events([{"customer_id": "gz", "ts": "2026-01-07T10:00:00Z", "type": "visit"}], gzip=True)["rows"], 1)

    def test_subject_rights_and_consent(self) -> None:
        rec = self.ingest.record_consents({"customer_id": "c1", "purpose": "analytics", "granted": False})
        self.assertEqual(rec["recorded"], 1)
        status = self.admin.consent("c1")
        self.assertFalse(status["purposes"]["analytics"]["granted"])

        export = self.admin.export_subject("c2")
        self.assertEqual(export["rows"], 1)
        self.assertIn("customer_id", self.admin.export_subject("c2", format="csv"))

        fixed = self.admin.rectify_subject("c4", {"country": "FR"})
        self.assertEqual(fixed["rows"], 1)
        receipt = self.admin.erase_subject("c5")
        self.assertEqual(receipt["rows"], 1)
        self.assertIn(self.admin.erasure(receipt["id"])["status"], ("pending", "complete"))

        tenant = self.admin.set_retention(365)
        self.assertEqual(tenant["retention_days"], 365)
        tenant = self.admin.set_privacy_policy({"processors": ["Example Hosting Ltd"]})
        self.assertEqual(tenant["privacy"]["processors"], ["Example Hosting Ltd"])
        self.assertIn("Example Hosting Ltd", self.admin.privacy_notice("markdown"))
        self.assertIsInstance(self.query.privacy_notice(), dict)
        actions = {e["action"] for e in self.admin.audit(limit=500)}
        self.assertTrue({"tenant.create", "key.issue", "subject.erase"} <= actions, actions)

    def test_encrypted_and_federation_routes_answer(self) -> None:
        # This server is not a processor: HE routes answer 404 with a coded error.
        with self.assertRaises(PrivalyticsError) as cm:
            self.admin.he_dataset("hds_missing")
        self.assertEqual(cm.exception.status, 404)
        with self.assertRaises(PrivalyticsError) as cm:
            self.admin.federation("fed_missing")
        self.assertEqual(cm.exception.status, 404)

    def test_data_keys_and_shred(self) -> None:
        other = self.operator.create_tenant("py-shred-" + secrets.token_hex(3), {"epsilon": 1}, period="lifetime")
        admin = self.operator.with_key(other["admin_key"]["token"])
        try:
            self.assertTrue(admin.rotate_data_key()["rotated"])
        except PrivalyticsError as e:  # encryption at rest off on this server
            self.assertEqual(e.code, "conflict", e)
        try:
            self.assertIsNone(self.operator.shred_tenant_events(other["tenant"]["id"]))
        except PrivalyticsError as e:
            self.assertEqual(e.code, "conflict", e)

    def test_models_and_fairness_audit(self) -> None:
        model = {"format_version": 1, "version": 1, "kind": "logistic", "features": ["intercept", "a"],
                 "schema": {"numeric": [{"name": "a", "lower": 0, "upper": 10}], "categorical": [], "label": "y", "positive": "yes"},
                 "coefficients": [0.1, 0.2], "epsilon": 1, "delta": 1e-5, "rho": 0.1, "charges": [],
                 "locations": 6, "threshold": 5, "lambda": 0.5, "trained": "2026-01-01T00:00:00Z", "training_seconds": 1}
        stored = self.admin.upload_model("py-model", model)
        self.assertEqual(stored["version"], 1)
        self.assertEqual(self.admin.upload_model("py-model", model)["version"], 2)
        names = {m["name"]: m["versions"] for m in self.query.models()["models"]}
        self.assertEqual(names.get("py-model"), 2)
        self.assertEqual(self.query.model("py-model", 1)["coefficients"], [0.1, 0.2])
        records = [{"group": "a", "score": 0.9, "label": True}, {"group": "b", "score": 0.2, "label": False}] * 200
        config = {"attribute": "store", "groups": ["a", "b"], "threshold": 0.5, "epsilon": 0.5, "delta": 1e-6, "confidence": 0.95}
        audit = self.query.create_fairness_audit(config, records, model="py-model")
        self.assertEqual(audit["model_version"], 2)
        self.assertIn("# Fairness audit by store", audit["markdown"])
        self.assertEqual(self.query.fairness_audit(audit["id"]), audit)
        with self.assertRaises(PrivalyticsError) as cm:
            self.query.create_fairness_audit(dict(config, groups=["a"]), records)
        self.assertEqual(cm.exception.status, 400)


if __name__ == "__main__":
    unittest.main()
