"""A tiny Python client for the Privalytics HTTP API, for the notebooks beside it.

Only `requests` is needed (pandas for `to_frame`). Every call sends the API key as
`Authorization: Bearer …`, the way the server expects; an API error raises
`PrivalyticsError` carrying the server's code, message and request ID.

    from privalytics_client import Client
    pv = Client.from_env()            # PRIVALYTICS_URL and PRIVALYTICS_KEY
    pv.explain(q)                     # cost and expected error, spends nothing
    res = pv.query(q)                 # a DP answer, charged to the budget
    df = to_frame(res)                # one row per cell: keys, value, lower, upper
"""

import os

import requests

__all__ = ["Client", "PrivalyticsError", "cli", "cli_parallel", "to_frame"]


class PrivalyticsError(Exception):
    """An error answer of the API: code (e.g. "budget"), message and request ID."""

    def __init__(self, status, code, message, request_id=""):
        super().__init__(f"{status} {code}: {message}" + (f" (request {request_id})" if request_id else ""))
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


class Client:
    """A connection to one Privalytics server with one API key."""

    def __init__(self, base_url, api_key, timeout=60):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_env(cls, key_variable="PRIVALYTICS_KEY"):
        """A client for $PRIVALYTICS_URL (default http://127.0.0.1:8080) and the key in key_variable."""
        url = os.environ.get("PRIVALYTICS_URL", "http://127.0.0.1:8080")
        key = os.environ.get(key_variable)
        if not key:
            raise RuntimeError(f"set {key_variable} to an API key (privalytics demo prints one)")
        return cls(url, key)

    def _call(self, method, path, body=None, params=None):
        r = self._session.request(method, self.base_url + path, json=body, params=params, timeout=self.timeout)
        if r.status_code >= 300:
            try:
                e = r.json()["error"]
            except (ValueError, KeyError, TypeError):
                e = {"code": "http", "message": r.text[:200]}
            raise PrivalyticsError(r.status_code, e.get("code", ""), e.get("message", ""), e.get("request_id", ""))
        return r.json() if r.content else None

    def tenant(self):
        """The caller's tenant: its name, schema, purposes and budget settings."""
        return self._call("GET", "/v1/tenant")

    def budget(self):
        """The tenant's budget (total, spent, remaining) and the caller's share under "key"."""
        return self._call("GET", "/v1/budget")

    def charges(self, limit=500):
        """The ledger, newest first: one entry per charged answer."""
        return self._call("GET", "/v1/budget/charges", params={"limit": limit})["charges"]

    def explain(self, query):
        """What a query would cost and its expected error, without reading data or spending budget."""
        return self._call("POST", "/v1/queries:explain", query)

    def query(self, query):
        """Runs a DP query (charged to the budget before it is answered)."""
        return self._call("POST", "/v1/queries", query)


def to_frame(result):
    """One row per released cell: a column per group key, then value, lower and upper
    for each aggregate (named "<aggregate>", "<aggregate>_lower", "<aggregate>_upper")."""
    import pandas as pd

    rows = []
    for r in result["rows"]:
        row = dict(zip(result["group_by"], r["key"]))
        for agg, cell in zip(result["aggregates"], r["cells"]):
            row[agg["name"]] = cell["value"]
            row[agg["name"] + "_lower"] = cell["lower"]
            row[agg["name"] + "_upper"] = cell["upper"]
        rows.append(row)
    df = pd.DataFrame(rows)
    if result["group_by"] and not df.empty:
        df = df.sort_values(result["group_by"]).reset_index(drop=True)
    return df


def cli(*args, check=True):
    """Runs the privalytics command line (PRIVALYTICS_BIN, default `privalytics`)
    and returns its standard output; a failure raises with its output."""
    import subprocess

    cmd = [os.environ.get("PRIVALYTICS_BIN", "privalytics"), *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} … failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def cli_parallel(argvs, timeout=300):
    """Runs several privalytics commands at once (parties of a protocol that wait
    for each other) and returns their outputs in order; any failure raises."""
    import subprocess

    bin_ = os.environ.get("PRIVALYTICS_BIN", "privalytics")
    procs = [subprocess.Popen([bin_, *map(str, a)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for a in argvs]
    outs = []
    for p, a in zip(procs, argvs):
        out, _ = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"privalytics {' '.join(map(str, a[:2]))} failed ({p.returncode}):\n{out}")
        outs.append(out)
    return outs
