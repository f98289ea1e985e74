"""Privalytics: a typed client for the differentially private analytics API.

    from privalytics import Client, to_frame
    pv = Client.from_env()          # PRIVALYTICS_SERVER, PRIVALYTICS_API_KEY (as the CLI)
    pv.explain(q)                   # cost and expected error, spends nothing
    res = pv.query(q)               # a DP answer, charged to the budget
    df = to_frame(res)              # one row per group: keys, value, lower, upper

Every operation of the server's OpenAPI spec has a method (OPERATIONS maps
operationIds to them); 429 and 503 are retried after Retry-After; errors raise
PrivalyticsError with the server's code and a message that says what to change.
"""

from .cli import cli, cli_parallel
from .client import DEFAULT_SERVER, OPERATIONS, RETRY_STATUSES, Client
from .errors import PrivalyticsError
from .frame import to_frame

__version__ = "0.1.0"

__all__ = ["Client", "PrivalyticsError", "to_frame", "cli", "cli_parallel", "OPERATIONS", "RETRY_STATUSES", "DEFAULT_SERVER", "__version__"]
