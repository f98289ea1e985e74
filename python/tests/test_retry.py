"""Retries against a tiny local server that answers 429 and 503 first."""

from __future__ import annotations

import http.server
import json
import threading
import time
import unittest
from typing import List, Tuple

from privalytics import Client, PrivalyticsError

Scripted = Tuple[int, dict, dict]  # status, headers, JSON body


class _Server:
    """Answers each request with the next scripted response and records what it got."""

    def __init__(self, script: List[Scripted]) -> None:
        self.script = list(script)
        self.seen: List[Tuple[str, str, str, bytes]] = []  # method, path, authorization, body
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                owner.seen.append((self.command, self.path, self.headers.get("Authorization", ""), self.rfile.read(n)))
                status, headers, body = owner.script.pop(0) if owner.script else (500, {}, {"error": {"code": "internal", "message": "script exhausted"}})
                raw = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _limited(retry_after: str = "") -> Scripted:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return 429, headers, {"error": {"code": "rate_limited", "message": "slow down", "request_id": "r1"}}


def _unavailable(retry_after: str = "") -> Scripted:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return 503, headers, {"error": {"code": "unavailable", "message": "draining"}}


BUDGET = {"total": {"epsilon": 1.0, "delta": 0.0}, "remaining": {"epsilon": 0.5, "delta": 0.0}}


class RetryTest(unittest.TestCase):
    def serve(self, script: List[Scripted]) -> _Server:
        s = _Server(script)
        self.addCleanup(s.close)
        return s

    def test_retry_after_is_honoured_on_429_and_503(self) -> None:
        s = self.serve([_limited("2"), _unavailable("3"), (200, {}, BUDGET)])
        waits: List[float] = []
        pv = Client(s.url, "pvk_test", sleep=waits.append)
        self.assertEqual(pv.budget()["remaining"]["epsilon"], 0.5)
        self.assertEqual(waits, [2.0, 3.0], "the client must wait what Retry-After says")
        self.assertEqual(len(s.seen), 3)
        self.assertTrue(all(auth == "Bearer pvk_test" for _, _, auth, _ in s.seen))

    def test_backoff_grows_without_retry_after(self) -> None:
        s = self.serve([_unavailable(), _unavailable(), _unavailable(), (200, {}, BUDGET)])
        waits: List[float] = []
        pv = Client(s.url, "k", backoff=0.5, sleep=waits.append)
        pv.budget()
        self.assertEqual(len(waits), 3)
        for attempt, w in enumerate(waits):
            base = 0.5 * 2 ** attempt
            self.assertGreaterEqual(w, base, f"wait {attempt}")
            self.assertLessEqual(w, base * 1.5, f"wait {attempt}: jitter is at most half the base")

    def test_gives_up_after_max_retries_with_the_servers_error(self) -> None:
        s = self.serve([_limited("1")] * 3)
        waits: List[float] = []
        pv = Client(s.url, "k", max_retries=2, sleep=waits.append)
        with self.assertRaises(PrivalyticsError) as cm:
            pv.tenant()
        e = cm.exception
        self.assertEqual((e.status, e.code, e.message, e.request_id, e.retry_after), (429, "rate_limited", "slow down", "r1", 1.0))
        self.assertEqual(waits, [1.0, 1.0])
        self.assertEqual(len(s.seen), 3, "one try and two retries")

    def test_post_body_is_sent_again_on_retry(self) -> None:
        s = self.serve([_limited("1"), (200, {}, {"rows": 1, "duplicate": False})])
        pv = Client(s.url, "k", sleep=lambda _: None)
        got = pv.ingest_events([{"customer_id": "c1", "ts": "2026-01-01T00:00:00Z", "type": "visit"}], idempotency_key="b1")
        self.assertEqual(got, {"rows": 1, "duplicate": False})
        self.assertEqual(len(s.seen), 2)
        self.assertEqual(s.seen[0][3], s.seen[1][3])
        self.assertIn(b'"customer_id":"c1"', s.seen[1][3])

    def test_file_import_is_sent_whole_again_on_retry(self) -> None:
        import tempfile
        from pathlib import Path

        s = self.serve([_unavailable("1"), (200, {}, {"rows": 2})])
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "events.csv"
            f.write_bytes(b"customer_id,ts,type\nc1,2026-01-01T00:00:00Z,visit\nc2,2026-01-02T00:00:00Z,visit\n")
            got = Client(s.url, "k", sleep=lambda _: None).import_file(f, format="csv", idempotency_key="imp-1")
        self.assertEqual(got["rows"], 2)
        self.assertEqual([seen[1] for seen in s.seen], ["/v1/imports?format=csv"] * 2)
        self.assertEqual(s.seen[0][3], s.seen[1][3])
        self.assertTrue(s.seen[1][3].endswith(b"c2,2026-01-02T00:00:00Z,visit\n"))

    def test_other_errors_are_not_retried(self) -> None:
        s = self.serve([(403, {}, {"error": {"code": "budget", "message": "needs ε 1 but ε 0.5 remain", "details": {"remaining": {"epsilon": 0.5}}}})])
        pv = Client(s.url, "k", sleep=lambda _: self.fail("a 403 must not be retried"))
        with self.assertRaises(PrivalyticsError) as cm:
            pv.query({"aggregates": [{"op": "count"}], "epsilon": 1})
        self.assertEqual(cm.exception.code, "budget")
        self.assertEqual(cm.exception.details["remaining"]["epsilon"], 0.5)
        self.assertEqual(len(s.seen), 1)

    def test_real_wait(self) -> None:
        # With the real clock: the retry does not come before Retry-After.
        s = self.serve([_limited("1"), (200, {}, BUDGET)])
        start = time.monotonic()
        Client(s.url, "k").budget()
        self.assertGreaterEqual(time.monotonic() - start, 0.95)

    def test_http_date_retry_after(self) -> None:
        from email.utils import formatdate

        s = self.serve([_unavailable(formatdate(time.time() + 30, usegmt=True)), (200, {}, BUDGET)])
        waits: List[float] = []
        Client(s.url, "k", sleep=waits.append).budget()
        self.assertEqual(len(waits), 1)
        self.assertTrue(25 <= waits[0] <= 30, waits)

    def test_path_segments_are_escaped(self) -> None:
        s = self.serve([(200, {}, {"purposes": {}, "history": []})])
        Client(s.url, "k").consent("a/b?c")
        self.assertEqual(s.seen[0][1], "/v1/consents/a%2Fb%3Fc")


if __name__ == "__main__":
    unittest.main()
