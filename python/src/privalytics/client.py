"""The HTTP client: one method per operation of api/openapi.yaml."""

from __future__ import annotations

import base64
import email.utils
import gzip as gzip_module
import json
import os
import random
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union, cast

from . import types as t
from .errors import PrivalyticsError

__all__ = ["Client", "DEFAULT_SERVER", "OPERATIONS", "RETRY_STATUSES"]

#: Where the CLI and this client go when PRIVALYTICS_SERVER is not set.
DEFAULT_SERVER = "http://127.0.0.1:8080"

#: Statuses after which the server did nothing and asks to come back later
#: (rate limit; starting, draining or full): retried after Retry-After.
RETRY_STATUSES = frozenset({429, 503})

#: operationId in api/openapi.yaml → the Client method that calls it. The
#: package's tests check every operation of the served spec is here.
OPERATIONS: Dict[str, str] = {
    "getHealth": "health",
    "getReadiness": "ready",
    "getOpenAPISpec": "openapi_spec",
    "getMetrics": "metrics",
    "redirectToDashboard": "dashboard_file",
    "getDashboardFile": "dashboard_file",
    "getTrackSnippet": "track_snippet",
    "trackEvent": "track_event",
    "trackPreflight": "track_preflight",
    "createTenant": "create_tenant",
    "listTenants": "list_tenants",
    "getTenant": "get_tenant",
    "getOwnTenant": "tenant",
    "createKey": "create_key",
    "listKeys": "list_keys",
    "revokeKey": "revoke_key",
    "setKeyBudget": "set_key_budget",
    "ingestEvents": "ingest_events",
    "importFile": "import_file",
    "runQuery": "query",
    "explainQuery": "explain",
    "explainWorkload": "explain_workload",
    "runSQL": "sql",
    "explainSQL": "explain_sql",
    "getBudget": "budget",
    "listCharges": "charges",
    "grantBudget": "grant_budget",
    "listBudgetChanges": "budget_changes",
    "setRetention": "set_retention",
    "exportSubject": "export_subject",
    "rectifySubject": "rectify_subject",
    "eraseSubject": "erase_subject",
    "getErasure": "erasure",
    "rotateDataKey": "rotate_data_key",
    "shredTenantEvents": "shred_tenant_events",
    "createHEDataset": "create_he_dataset",
    "getHEDataset": "he_dataset",
    "deleteHEDataset": "delete_he_dataset",
    "createHEJob": "create_he_job",
    "getHEJob": "he_job",
    "getHEJobResult": "he_job_result",
    "createFederation": "create_federation",
    "getFederation": "federation",
    "postKeyShare": "post_key_share",
    "postShamirShares": "post_shamir_shares",
    "getShamirShares": "shamir_shares",
    "getCollectivePublicKey": "collective_public_key",
    "getFranchisorKey": "franchisor_key",
    "createRound": "create_round",
    "getRound": "round",
    "postContribution": "post_contribution",
    "declareReady": "declare_ready",
    "getRoundAggregate": "round_aggregate",
    "postDecryptionShare": "post_decryption_share",
    "getRoundResult": "round_result",
    "listAuditEntries": "audit",
    "recordConsents": "record_consents",
    "getConsent": "consent",
    "getPrivacyNotice": "privacy_notice",
    "setPrivacyPolicy": "set_privacy_policy",
    "previewView": "preview_view",
    "createView": "create_view",
    "listViews": "views",
    "getView": "view",
    "deleteView": "delete_view",
    "listViewReleases": "view_releases",
    "getViewRollup": "view_rollup",
    "createDashboard": "create_dashboard",
    "listDashboards": "dashboards",
    "getDashboard": "dashboard",
    "deleteDashboard": "delete_dashboard",
    "shareDashboard": "share_dashboard",
    "revokeShare": "revoke_share",
    "listModels": "models",
    "getModel": "model",
    "uploadModel": "upload_model",
    "createFairnessAudit": "create_fairness_audit",
    "getFairnessAudit": "fairness_audit",
}

_NO_BODY = object()
Body = Union[bytes, str, Path]


def _seg(value: Any) -> str:
    """One path segment, escaped so an identifier can never change the route."""
    return urllib.parse.quote(str(value), safe="")


def _retry_after(value: Optional[str], now: float) -> Optional[float]:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # GET / answers 302 to the dashboard; the caller wants to see that, not the page.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None


class Client:
    """A connection to one Privalytics server with one API key.

    Every method sends the key as ``Authorization: Bearer …`` and returns the
    decoded answer (a dict shaped as the TypedDict it is annotated with, bytes
    for binary bodies, str for text). An error answer raises PrivalyticsError.
    429 and 503 answers are retried up to max_retries times, waiting what the
    server's Retry-After says (else backoff × 2^attempt, with jitter, at most
    max_backoff seconds): the server did nothing and asked to come back.
    """

    def __init__(
        self,
        server: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.server = (server or DEFAULT_SERVER).rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect)

    @classmethod
    def from_env(cls, key_variable: str = "PRIVALYTICS_API_KEY", **kwargs: Any) -> "Client":
        """A client for $PRIVALYTICS_SERVER (default http://127.0.0.1:8080) with
        the key in $PRIVALYTICS_API_KEY: the variables the privalytics CLI reads."""
        key = os.environ.get(key_variable)
        if not key:
            raise PrivalyticsError(0, "invalid", f"set {key_variable} to an API key (privalytics demo prints one)")
        return cls(os.environ.get("PRIVALYTICS_SERVER") or DEFAULT_SERVER, key, **kwargs)

    def with_key(self, api_key: str) -> "Client":
        """The same server and settings with another key (e.g. a new tenant's admin key)."""
        return Client(
            self.server, api_key, timeout=self.timeout, max_retries=self.max_retries,
            backoff=self.backoff, max_backoff=self.max_backoff, sleep=self._sleep,
        )

    # -- transport -----------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json_body: Any = _NO_BODY,
        body: Optional[Body] = None,
        content_type: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        accept: str = "application/json",
        expect: str = "json",
        auth: bool = True,
    ) -> Any:
        url = self.server + path
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        hdrs = {"Accept": accept, "User-Agent": "privalytics-python/0.1"}
        if self.api_key and auth:
            hdrs["Authorization"] = f"Bearer {self.api_key}"
        if json_body is not _NO_BODY:
            body = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})

        attempt = 0
        while True:
            data, stream = self._body(body)
            req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
            if stream is not None:
                req.data = stream  # type: ignore[assignment]
                req.add_header("Content-Length", str(os.fstat(stream.fileno()).st_size))
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    return self._decode(resp.status, resp.headers, resp.read(), expect)
            except urllib.error.HTTPError as e:
                raw = e.read()
                if 300 <= e.code < 400 and expect == "redirect":
                    return e.headers.get("Location", "")
                err = self._error(e.code, e.headers, raw)
                if e.code in RETRY_STATUSES and attempt < self.max_retries:
                    self._sleep(self._delay(attempt, err.retry_after))
                    attempt += 1
                    continue
                raise err from None
            except urllib.error.URLError as e:
                # The request may not have reached the server; only reads are repeated.
                if method == "GET" and attempt < self.max_retries:
                    self._sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                raise PrivalyticsError(0, "unavailable", f"cannot reach {self.server}: {e.reason}; is the server running? (PRIVALYTICS_SERVER)") from e
            finally:
                if stream is not None:
                    stream.close()

    @staticmethod
    def _body(body: Optional[Body]) -> "tuple[Optional[bytes], Optional[IO[bytes]]]":
        # A path is opened afresh for each attempt, so a retried import sends the whole file again.
        if body is None:
            return None, None
        if isinstance(body, Path):
            return None, open(body, "rb")
        if isinstance(body, str):
            return body.encode(), None
        return bytes(body), None

    def _delay(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        base = self.backoff * (2 ** attempt)
        # Jitter spreads out clients that were refused at the same moment.
        return min(base * (1 + random.random() / 2), self.max_backoff)

    @staticmethod
    def _decode(status: int, headers: Any, raw: bytes, expect: str) -> Any:
        if expect == "bytes":
            return raw
        if expect == "text":
            return raw.decode("utf-8")
        if expect == "redirect":
            return headers.get("Location", "")
        if not raw or status == 204:
            return None
        if expect == "json" or headers.get_content_type() == "application/json":
            return json.loads(raw)
        return raw.decode("utf-8")

    @staticmethod
    def _error(status: int, headers: Any, raw: bytes) -> PrivalyticsError:
        retry_after = _retry_after(headers.get("Retry-After"), time.time())
        try:
            e = json.loads(raw)["error"]
            return PrivalyticsError(status, e.get("code", ""), e.get("message", ""), e.get("details"), e.get("request_id", ""), retry_after)
        except (ValueError, KeyError, TypeError):
            return PrivalyticsError(status, "http", raw[:200].decode("utf-8", "replace").strip(), None, headers.get("X-Request-ID", ""), retry_after)

    # -- service -------------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        """GET /healthz: the process is up."""
        return cast(Dict[str, Any], self._request("GET", "/healthz"))

    def ready(self) -> bool:
        """GET /readyz: True when serving, False while starting or draining (no retry)."""
        try:
            self.with_retries(0)._request("GET", "/readyz")
            return True
        except PrivalyticsError as e:
            if e.status == 503:
                return False
            raise

    def with_retries(self, max_retries: int) -> "Client":
        """The same client with another retry limit (0: never retry)."""
        c = self.with_key(self.api_key or "")
        c.max_retries = max_retries
        return c

    def openapi_spec(self) -> str:
        """GET /openapi.yaml: the API contract this server implements."""
        return cast(str, self._request("GET", "/openapi.yaml", accept="application/yaml", expect="text"))

    def metrics(self) -> str:
        """GET /metrics: Prometheus text (operator key)."""
        return cast(str, self._request("GET", "/metrics", accept="text/plain", expect="text"))

    def track_snippet(self) -> str:
        """GET /track.js: the web shop's tracking snippet (no cookies, consent-aware)."""
        return cast(str, self._request("GET", "/track.js", accept="text/javascript", expect="text", auth=False))

    def track_event(self, key: str, origin: str, event: Mapping[str, Any]) -> None:
        """POST /v1/track: one event as a shop's page sends it, with a publishable track
        key and the page's Origin (never the API key: the server refuses one here)."""
        self._request("POST", "/v1/track", params={"key": key}, json_body=dict(event), headers={"Origin": origin}, auth=False)

    def track_preflight(self, origin: str) -> None:
        """OPTIONS /v1/track: the CORS preflight a browser sends before track_event."""
        self._request("OPTIONS", "/v1/track", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}, auth=False)

    def dashboard_file(self, path: Optional[str] = None) -> Union[str, bytes]:
        """GET /dashboard/{path}: a dashboard file ("" for the page). With path None, GET / and
        return where it redirects."""
        if path is None:
            return cast(str, self._request("GET", "/", accept="text/html", expect="redirect"))
        return cast(bytes, self._request("GET", "/dashboard/" + path.lstrip("/"), accept="*/*", expect="bytes"))

    # -- tenants and keys ----------------------------------------------------

    def create_tenant(
        self,
        tenant_id: str,
        budget: t.Cost,
        *,
        name: Optional[str] = None,
        schema: Optional[t.Schema] = None,
        purposes: Optional[Sequence[str]] = None,
        retention_days: Optional[int] = None,
        privacy: Optional[t.PrivacyPolicy] = None,
        period: Optional[str] = None,
        accounting: Optional[str] = None,
    ) -> t.TenantCreated:
        """POST /v1/tenants (operator key): the tenant and its first admin key, whose token is shown only here.

        period: "month" (the default when omitted, except with accounting="zcdp") gives each
        calendar month of data its own budget — queries then need a time filter with both
        ends, and views reserve their cost per month; "lifetime" keeps one budget for all time.
        """
        body: Dict[str, Any] = {"id": tenant_id, "budget": budget}
        for k, v in (("name", name), ("schema", schema), ("purposes", purposes), ("retention_days", retention_days),
                     ("privacy", privacy), ("period", period), ("accounting", accounting)):
            if v is not None:
                body[k] = list(v) if k == "purposes" else v
        return cast(t.TenantCreated, self._request("POST", "/v1/tenants", json_body=body))

    def get_tenant(self, tenant_id: str) -> t.Tenant:
        """GET /v1/tenants/{tenant} (operator, or that tenant's admin)."""
        return cast(t.Tenant, self._request("GET", "/v1/tenants/" + _seg(tenant_id)))

    def list_tenants(self) -> List[t.Tenant]:
        """GET /v1/tenants (operator key): every tenant on the server."""
        return cast(List[t.Tenant], self._request("GET", "/v1/tenants")["tenants"])

    def tenant(self) -> t.Tenant:
        """GET /v1/tenant: the caller's own tenant (schema, purposes, budget settings)."""
        return cast(t.Tenant, self._request("GET", "/v1/tenant"))

    def create_key(self, name: str, role: t.Role) -> t.IssuedKey:
        """POST /v1/keys (admin): a new key; its token is shown only in this answer."""
        return cast(t.IssuedKey, self._request("POST", "/v1/keys", json_body={"name": name, "role": role}))

    def list_keys(self) -> List[t.APIKey]:
        """GET /v1/keys (admin): the tenant's keys, without secrets."""
        return cast(List[t.APIKey], self._request("GET", "/v1/keys")["keys"])

    def revoke_key(self, key_id: str) -> None:
        """DELETE /v1/keys/{id} (admin)."""
        self._request("DELETE", "/v1/keys/" + _seg(key_id))

    def set_key_budget(self, key_id: str, share: t.Cost) -> t.KeyBudget:
        """PUT /v1/keys/{id}/budget (admin): give the key its own share; a zero share returns it to the pool."""
        return cast(t.KeyBudget, self._request("PUT", f"/v1/keys/{_seg(key_id)}/budget", json_body=share))

    # -- events ----------------------------------------------------------------

    def ingest_events(
        self,
        events: Union[Iterable[Mapping[str, Any]], str, bytes],
        *,
        idempotency_key: Optional[str] = None,
        gzip: bool = False,
    ) -> t.IngestResult:
        """POST /v1/events (ingest or admin): one batch, stored durably before the answer.

        events is a list of flat dicts, or NDJSON text. With an idempotency_key a
        retried batch stores nothing and answers duplicate: True; give one when the
        batch may be sent twice (the client retries 429 and 503, which store nothing)."""
        if isinstance(events, str):
            data = events.encode()
        elif isinstance(events, (bytes, bytearray)):
            data = bytes(events)
        else:
            data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events).encode()
        headers = {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if gzip:
            data = gzip_module.compress(data)
            headers["Content-Encoding"] = "gzip"
        return cast(t.IngestResult, self._request("POST", "/v1/events", body=data, content_type="application/x-ndjson", headers=headers))

    def import_file(
        self,
        source: Union[str, "os.PathLike[str]", bytes],
        *,
        format: str = "csv",
        mapping: Optional[str] = None,
        mapping_json: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> t.ImportResult:
        """POST /v1/imports (ingest or admin): a whole CSV, NDJSON or Parquet file
        (a path, streamed, or bytes), mapped by a preset or a JSON mapping."""
        body: Body = source if isinstance(source, bytes) else Path(source)
        headers = {}
        if mapping_json is not None:
            headers["Privalytics-Mapping"] = json.dumps(mapping_json)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return cast(t.ImportResult, self._request(
            "POST", "/v1/imports", params={"format": format, "mapping": mapping}, body=body,
            content_type="application/octet-stream", headers=headers))

    # -- queries ---------------------------------------------------------------

    def query(self, query: t.Query) -> t.Result:
        """POST /v1/queries: a DP answer, charged to the budget before it is released.
        A repeat on an unchanged snapshot is answered from the cache (cached: True) at no cost."""
        return cast(t.Result, self._request("POST", "/v1/queries", json_body=query))

    def explain(self, query: t.Query) -> t.Explanation:
        """POST /v1/queries:explain: the cost and expected error; reads no data, spends nothing."""
        return cast(t.Explanation, self._request("POST", "/v1/queries:explain", json_body=query))

    def explain_workload(self, queries: List[t.Query]) -> Dict[str, Any]:
        """POST /v1/workloads:explain: each query's explanation and the total cost of
        running them all, and whether it fits the budget left; reads no data, spends nothing."""
        return cast(Dict[str, Any], self._request("POST", "/v1/workloads:explain", json_body={"queries": queries}))

    def sql(self, text: str) -> t.Result:
        """POST /v1/sql: a query in SQL (SELECT WITH DIFFERENTIAL_PRIVACY …), charged as its JSON form."""
        return cast(t.Result, self._request("POST", "/v1/sql", body=text, content_type="text/plain"))

    def explain_sql(self, text: str) -> t.Explanation:
        """POST /v1/sql:explain: what the SQL query would cost; spends nothing."""
        return cast(t.Explanation, self._request("POST", "/v1/sql:explain", body=text, content_type="text/plain"))

    # -- budget ----------------------------------------------------------------

    def budget(self) -> t.Budget:
        """GET /v1/budget: total, spent, remaining and allocated, and under "key" what the caller may spend."""
        return cast(t.Budget, self._request("GET", "/v1/budget"))

    def charges(self, limit: int = 500, offset: int = 0) -> List[t.Charge]:
        """GET /v1/budget/charges: the ledger, newest first (query keys see their own charges)."""
        return cast(List[t.Charge], self._request("GET", "/v1/budget/charges", params={"limit": limit, "offset": offset})["charges"])

    def grant_budget(self, amount: t.Cost) -> t.BudgetStatus:
        """POST /v1/budget/grants (admin): raise the tenant's total; recorded."""
        return cast(t.BudgetStatus, self._request("POST", "/v1/budget/grants", json_body=amount))

    def budget_changes(self, limit: int = 50, offset: int = 0) -> List[t.BudgetChange]:
        """GET /v1/budget/changes (admin): grants and allocations, newest first."""
        return cast(List[t.BudgetChange], self._request("GET", "/v1/budget/changes", params={"limit": limit, "offset": offset})["changes"])

    # -- views, dashboards, share links ----------------------------------------

    def preview_view(self, spec: Mapping[str, Any]) -> Dict[str, Any]:
        """POST /v1/views/preview: what a view costs per month, with all views, and whether it fits; spends nothing."""
        return cast(Dict[str, Any], self._request("POST", "/v1/views/preview", json_body=spec))

    def create_view(self, spec: Mapping[str, Any]) -> Dict[str, Any]:
        """POST /v1/views: save a view released once per closed bucket (409 with details.cost when over budget)."""
        return cast(Dict[str, Any], self._request("POST", "/v1/views", json_body=spec))

    def views(self) -> List[Dict[str, Any]]:
        """GET /v1/views: the tenant's views with their costs."""
        return cast(List[Dict[str, Any]], self._request("GET", "/v1/views")["views"])

    def view(self, view_id: str) -> Dict[str, Any]:
        """GET /v1/views/{id} (share links: a view of their dashboard)."""
        return cast(Dict[str, Any], self._request("GET", "/v1/views/" + _seg(view_id)))

    def delete_view(self, view_id: str) -> None:
        """DELETE /v1/views/{id}: the view and its releases; what they spent stays spent."""
        self._request("DELETE", "/v1/views/" + _seg(view_id))

    def view_releases(self, view_id: str, start: Optional[str] = None, end: Optional[str] = None) -> List[Dict[str, Any]]:
        """GET /v1/views/{id}/releases?from=&to= (days, inclusive): closed releases are free to read forever."""
        params = {k: v for k, v in (("from", start), ("to", end)) if v}
        return cast(List[Dict[str, Any]], self._request("GET", f"/v1/views/{_seg(view_id)}/releases", params=params)["releases"])

    def view_rollup(self, view_id: str, by: str = "quarter") -> List[Dict[str, Any]]:
        """GET /v1/views/{id}/rollup?by=quarter|year|total: consistent sums of the closed releases, free."""
        return cast(List[Dict[str, Any]], self._request("GET", f"/v1/views/{_seg(view_id)}/rollup", params={"by": by})["rows"])

    def create_dashboard(self, name: str, view_ids: List[str], layout: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """POST /v1/dashboards: save a dashboard of views."""
        body: Dict[str, Any] = {"name": name, "view_ids": list(view_ids)}
        if layout is not None:
            body["layout"] = dict(layout)
        return cast(Dict[str, Any], self._request("POST", "/v1/dashboards", json_body=body))

    def dashboards(self) -> List[Dict[str, Any]]:
        """GET /v1/dashboards."""
        return cast(List[Dict[str, Any]], self._request("GET", "/v1/dashboards")["dashboards"])

    def dashboard(self, dashboard_id: str) -> Dict[str, Any]:
        """GET /v1/dashboards/{id} (a share link: its own dashboard)."""
        return cast(Dict[str, Any], self._request("GET", "/v1/dashboards/" + _seg(dashboard_id)))

    def delete_dashboard(self, dashboard_id: str) -> None:
        """DELETE /v1/dashboards/{id}: also revokes its share links."""
        self._request("DELETE", "/v1/dashboards/" + _seg(dashboard_id))

    def share_dashboard(self, dashboard_id: str) -> Dict[str, Any]:
        """POST /v1/dashboards/{id}/share: a read-only token for this dashboard and nothing else (shown once)."""
        return cast(Dict[str, Any], self._request("POST", f"/v1/dashboards/{_seg(dashboard_id)}/share"))

    def revoke_share(self, dashboard_id: str, share_id: str) -> None:
        """DELETE /v1/dashboards/{id}/share/{share_id}."""
        self._request("DELETE", f"/v1/dashboards/{_seg(dashboard_id)}/share/{_seg(share_id)}")

    # -- data subjects, retention, keys at rest ---------------------------------

    def set_retention(self, days: int) -> t.Tenant:
        """PUT /v1/tenant/retention (admin): purge events older than days; 0 keeps them until erased."""
        return cast(t.Tenant, self._request("PUT", "/v1/tenant/retention", json_body={"retention_days": days}))

    def export_subject(self, customer_id: str, *, format: str = "json") -> Union[t.SubjectExport, str]:
        """GET /v1/subjects/{customer_id} (admin): every stored event of one customer (JSON, or CSV text)."""
        if format == "csv":
            return cast(str, self._request("GET", "/v1/subjects/" + _seg(customer_id), params={"format": "csv"}, accept="text/csv", expect="text"))
        return cast(t.SubjectExport, self._request("GET", "/v1/subjects/" + _seg(customer_id)))

    def rectify_subject(self, customer_id: str, fields: Mapping[str, Any]) -> t.ErasureReceipt:
        """PATCH /v1/subjects/{customer_id} (admin): correct fields on every event of the customer."""
        return cast(t.ErasureReceipt, self._request("PATCH", "/v1/subjects/" + _seg(customer_id), json_body={"fields": dict(fields)}))

    def erase_subject(self, customer_id: str) -> t.ErasureReceipt:
        """DELETE /v1/subjects/{customer_id} (admin): hidden at once, removed from disk by compaction."""
        return cast(t.ErasureReceipt, self._request("DELETE", "/v1/subjects/" + _seg(customer_id)))

    def erasure(self, receipt_id: str) -> t.ErasureReceipt:
        """GET /v1/erasures/{id} (admin): a receipt; status becomes complete when nothing on disk holds the rows."""
        return cast(t.ErasureReceipt, self._request("GET", "/v1/erasures/" + _seg(receipt_id)))

    def rotate_data_key(self) -> Dict[str, Any]:
        """POST /v1/tenant/data-keys (admin): seal new events under a new key."""
        return cast(Dict[str, Any], self._request("POST", "/v1/tenant/data-keys"))

    def shred_tenant_events(self, tenant_id: str) -> None:
        """DELETE /v1/tenants/{tenant}/events (operator): destroy the tenant's data keys."""
        self._request("DELETE", f"/v1/tenants/{_seg(tenant_id)}/events")

    # -- encrypted datasets (processor role) ------------------------------------

    def create_he_dataset(self, eval_keys: Union[bytes, str, "os.PathLike[str]"], table: Union[bytes, str, "os.PathLike[str]"]) -> t.HEDataset:
        """POST /v1/he/datasets: upload the evaluation keys, then the encrypted table (bytes or paths)."""
        boundary = "privalytics-" + secrets.token_hex(12)
        parts = []
        for name, src in (("keys", eval_keys), ("table", table)):
            content = src if isinstance(src, bytes) else Path(src).read_bytes()
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return cast(t.HEDataset, self._request("POST", "/v1/he/datasets", body=data, content_type=f"multipart/form-data; boundary={boundary}"))

    def he_dataset(self, dataset: str) -> t.HEDataset:
        """GET /v1/he/datasets/{dataset}: the dataset's public header."""
        return cast(t.HEDataset, self._request("GET", "/v1/he/datasets/" + _seg(dataset)))

    def delete_he_dataset(self, dataset: str) -> None:
        """DELETE /v1/he/datasets/{dataset}."""
        self._request("DELETE", "/v1/he/datasets/" + _seg(dataset))

    def create_he_job(self, dataset: str, job: t.HEJobSpec) -> t.HEJob:
        """POST /v1/he/datasets/{dataset}/jobs: queue a computation on the ciphertexts."""
        return cast(t.HEJob, self._request("POST", f"/v1/he/datasets/{_seg(dataset)}/jobs", json_body=job))

    def he_job(self, dataset: str, job: str) -> t.HEJob:
        """GET /v1/he/datasets/{dataset}/jobs/{job}: queued, running, done or failed."""
        return cast(t.HEJob, self._request("GET", f"/v1/he/datasets/{_seg(dataset)}/jobs/{_seg(job)}"))

    def he_job_result(self, dataset: str, job: str) -> bytes:
        """GET …/jobs/{job}/result: the encrypted result, for `privalytics he decrypt`."""
        return cast(bytes, self._request("GET", f"/v1/he/datasets/{_seg(dataset)}/jobs/{_seg(job)}/result", accept="application/octet-stream", expect="bytes"))

    # -- federations (franchise locations) ---------------------------------------

    def create_federation(self, name: str, locations: Sequence[str], threshold: int, franchisor_key: Union[bytes, str]) -> t.FederationCreated:
        """POST /v1/federations (tenant admin): one credential per location, shown only here.
        franchisor_key is the PVFP public key, as bytes or already base64."""
        key = base64.b64encode(franchisor_key).decode() if isinstance(franchisor_key, bytes) else franchisor_key
        body = {"name": name, "locations": list(locations), "threshold": threshold, "franchisor_key": key}
        return cast(t.FederationCreated, self._request("POST", "/v1/federations", json_body=body))

    def federation(self, fed: str) -> t.Federation:
        """GET /v1/federations/{fed}: the setup state."""
        return cast(t.Federation, self._request("GET", "/v1/federations/" + _seg(fed)))

    def _fed_binary(self, fed: str, tail: str, data: Optional[bytes] = None) -> Any:
        path = f"/v1/federations/{_seg(fed)}{tail}"
        if data is None:
            return self._request("GET", path, accept="application/octet-stream", expect="bytes")
        return self._request("POST", path, body=data, content_type="application/octet-stream")

    def post_key_share(self, fed: str, share: bytes) -> t.ShareAccepted:
        """POST /v1/federations/{fed}/key-shares (location, once)."""
        return cast(t.ShareAccepted, self._fed_binary(fed, "/key-shares", share))

    def post_shamir_shares(self, fed: str, bundle: bytes) -> t.ShareAccepted:
        """POST /v1/federations/{fed}/shamir-shares (location, once)."""
        return cast(t.ShareAccepted, self._fed_binary(fed, "/shamir-shares", bundle))

    def shamir_shares(self, fed: str) -> bytes:
        """GET /v1/federations/{fed}/shamir-shares: the sealed shares addressed to the calling location."""
        return cast(bytes, self._fed_binary(fed, "/shamir-shares"))

    def collective_public_key(self, fed: str) -> bytes:
        """GET /v1/federations/{fed}/public-key."""
        return cast(bytes, self._fed_binary(fed, "/public-key"))

    def franchisor_key(self, fed: str) -> bytes:
        """GET /v1/federations/{fed}/franchisor-key (location)."""
        return cast(bytes, self._fed_binary(fed, "/franchisor-key"))

    def create_round(self, fed: str, query: t.FederatedQuery, *, contribute_seconds: Optional[float] = None, decrypt_seconds: Optional[float] = None) -> t.Round:
        """POST /v1/federations/{fed}/rounds (tenant admin): publish the next round's query."""
        body: Dict[str, Any] = {"query": query}
        if contribute_seconds is not None:
            body["contribute_seconds"] = contribute_seconds
        if decrypt_seconds is not None:
            body["decrypt_seconds"] = decrypt_seconds
        return cast(t.Round, self._request("POST", f"/v1/federations/{_seg(fed)}/rounds", json_body=body))

    def round(self, fed: str, number: int) -> t.Round:
        """GET /v1/federations/{fed}/rounds/{round}."""
        return cast(t.Round, self._request("GET", f"/v1/federations/{_seg(fed)}/rounds/{int(number)}"))

    def post_contribution(self, fed: str, number: int, ciphertext: bytes) -> t.ShareAccepted:
        """POST …/rounds/{round}/contributions (location, once)."""
        return cast(t.ShareAccepted, self._fed_binary(fed, f"/rounds/{int(number)}/contributions", ciphertext))

    def declare_ready(self, fed: str, number: int) -> t.Round:
        """POST …/rounds/{round}/ready (location): live for decryption."""
        return cast(t.Round, self._request("POST", f"/v1/federations/{_seg(fed)}/rounds/{int(number)}/ready"))

    def round_aggregate(self, fed: str, number: int) -> bytes:
        """GET …/rounds/{round}/aggregate (location in the decrypting set)."""
        return cast(bytes, self._fed_binary(fed, f"/rounds/{int(number)}/aggregate"))

    def post_decryption_share(self, fed: str, number: int, share: bytes) -> t.ShareAccepted:
        """POST …/rounds/{round}/decryption-shares (location in the decrypting set, once)."""
        return cast(t.ShareAccepted, self._fed_binary(fed, f"/rounds/{int(number)}/decryption-shares", share))

    def round_result(self, fed: str, number: int) -> bytes:
        """GET …/rounds/{round}/result (tenant admin): the DP total, encrypted to the franchisor."""
        return cast(bytes, self._fed_binary(fed, f"/rounds/{int(number)}/result"))

    # -- models and fairness audits (docs/learning.md) ------------------------------

    def models(self) -> t.ModelList:
        """GET /v1/models (admin or query key): the latest version of each model."""
        return cast(t.ModelList, self._request("GET", "/v1/models"))

    def model(self, name: str, version: Optional[int] = None) -> t.Model:
        """GET /v1/models/{name}: the latest version, or version N."""
        params = {"version": int(version)} if version else None
        return cast(t.Model, self._request("GET", "/v1/models/" + _seg(name), params=params))

    def upload_model(self, name: str, model: Union[Mapping[str, Any], Body]) -> t.Model:
        """POST /v1/models/{name} (admin): store a model file (a dict, or the JSON file
        `privalytics learn train --out` wrote) as the next version."""
        if isinstance(model, Mapping):
            body = dict(model)
        else:
            raw = Path(model).read_bytes() if isinstance(model, Path) else model
            body = json.loads(raw)
        return cast(t.Model, self._request("POST", "/v1/models/" + _seg(name), json_body=body))

    def create_fairness_audit(self, config: t.FairnessConfig, records: Sequence[t.FairnessRecord], *, model: Optional[str] = None, model_version: Optional[int] = None) -> t.FairnessAudit:
        """POST /v1/fairness-audits (admin or query key): a DP bias audit of predictions;
        charged (config's epsilon, delta) once its configuration has been checked."""
        body: Dict[str, Any] = {"config": dict(config), "records": [dict(r) for r in records]}
        if model:
            body["model"] = model
        if model_version:
            body["model_version"] = int(model_version)
        return cast(t.FairnessAudit, self._request("POST", "/v1/fairness-audits", json_body=body))

    def fairness_audit(self, audit_id: str) -> t.FairnessAudit:
        """GET /v1/fairness-audits/{id}: a stored audit and its plain-language report."""
        return cast(t.FairnessAudit, self._request("GET", "/v1/fairness-audits/" + _seg(audit_id)))

    # -- audit, consent, notice ----------------------------------------------------

    def audit(self, limit: int = 50, offset: int = 0) -> List[t.AuditEntry]:
        """GET /v1/audit (admin): the hash-chained trail, newest first."""
        return cast(List[t.AuditEntry], self._request("GET", "/v1/audit", params={"limit": limit, "offset": offset})["entries"])

    def record_consents(self, records: Union[t.ConsentRecord, Sequence[t.ConsentRecord]]) -> t.ConsentsRecorded:
        """POST /v1/consents (ingest or admin): all records are stored or none."""
        body = dict(records) if isinstance(records, Mapping) else [dict(r) for r in records]
        return cast(t.ConsentsRecorded, self._request("POST", "/v1/consents", json_body=body))

    def consent(self, customer_id: str) -> t.ConsentStatus:
        """GET /v1/consents/{customer_id} (admin): standing per purpose and the history."""
        return cast(t.ConsentStatus, self._request("GET", "/v1/consents/" + _seg(customer_id)))

    def privacy_notice(self, format: str = "json") -> Union[Dict[str, Any], str]:
        """GET /v1/privacy-notice: a dict, or the text for format markdown or html."""
        if format == "json":
            return cast(Dict[str, Any], self._request("GET", "/v1/privacy-notice"))
        accept = {"markdown": "text/markdown", "md": "text/markdown", "html": "text/html"}.get(format, "*/*")
        return cast(str, self._request("GET", "/v1/privacy-notice", params={"format": format}, accept=accept, expect="text"))

    def set_privacy_policy(self, policy: t.PrivacyPolicy) -> t.Tenant:
        """PUT /v1/tenant/privacy (admin): consent policy per purpose, stray-data policy, processors."""
        return cast(t.Tenant, self._request("PUT", "/v1/tenant/privacy", json_body=policy))
