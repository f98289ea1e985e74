"""Typed shapes of the API's JSON bodies, named as in api/openapi.yaml.

They are TypedDicts: answers stay the plain dicts the server sent (so nothing is
lost when the server adds a field), while editors and type checkers know the
keys. total=False because the server omits absent optional fields.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, TypedDict

Role = Literal["admin", "ingest", "query", "processor"]


class Cost(TypedDict, total=False):
    epsilon: float
    delta: float
    rho: float


class Column(TypedDict, total=False):
    name: str
    type: Literal["string", "int", "decimal", "float", "timestamp", "bool"]
    required: bool
    allowed: List[str]
    max_length: int
    scale: int
    free_text: bool
    description: str


class Schema(TypedDict, total=False):
    subject: str
    time: str
    columns: List[Column]


class PrivacyPolicy(TypedDict, total=False):
    consent: Dict[str, Literal["opt-in", "opt-out"]]
    stray_data: Literal["reject", "redact"]
    processors: List[str]


class Tenant(TypedDict, total=False):
    id: str
    name: str
    schema: Schema
    budget: Cost
    purposes: List[str]
    retention_days: int
    privacy: PrivacyPolicy
    created_at: str


class APIKey(TypedDict, total=False):
    id: str
    tenant_id: str
    name: str
    role: Role
    created_at: str
    revoked_at: str


class IssuedKey(APIKey, total=False):
    token: str


class TenantCreated(TypedDict, total=False):
    tenant: Tenant
    admin_key: IssuedKey


class KeyBudget(TypedDict, total=False):
    key_id: str
    shared: bool
    total: Cost
    spent: Cost
    remaining: Cost


class PeriodBudget(TypedDict, total=False):
    period: str
    spent: Cost
    remaining: Cost
    reserved: Cost  # what views reserve of the month; ad-hoc questions may spend remaining - reserved


class BudgetStatus(TypedDict, total=False):
    tenant_id: str
    total: Cost
    spent: Cost
    remaining: Cost
    allocated: Cost
    period: str
    accounting: str
    periods: List[PeriodBudget]


class Budget(BudgetStatus, total=False):
    """GET /v1/budget: the tenant's budget and, under key, the caller's."""

    key: KeyBudget


class Charge(TypedDict, total=False):
    id: str
    tenant_id: str
    key_id: str
    time: str
    fingerprint: str
    mechanisms: str
    cost: Cost
    refunded: bool


class BudgetChange(TypedDict, total=False):
    id: str
    time: str
    kind: Literal["grant", "allocate"]
    key_id: str
    actor_key_id: str
    amount: Cost


class Filter(TypedDict, total=False):
    column: str
    eq: Any
    # "in" is a Python keyword: write {"column": c, "in": [...]} as a dict literal.
    not_in: List[Any]
    gt: Any
    gte: Any
    lt: Any
    lte: Any


class GroupKey(TypedDict, total=False):
    column: str
    time: Literal["hour", "day", "week", "month", "quarter", "year"]
    keys: List[str]
    buckets: List[float]


class GroupBounds(TypedDict):
    lower: float
    upper: float


class Aggregate(TypedDict, total=False):
    name: str
    op: Literal["count", "distinct_customers", "sum", "mean", "variance", "stddev", "median", "quantile"]
    rank: float
    column: str
    lower: float
    upper: float
    bounds: Literal["auto"]
    auto_share: float
    within: float
    weight: float
    contribution_bounds_per_group: GroupBounds


class Bounds(TypedDict, total=False):
    max_groups: int
    max_rows_per_group: int
    max_rows: int


class Tuning(TypedDict, total=False):
    share: float
    correct_bias: bool


class Query(TypedDict, total=False):
    purpose: str
    where: List[Filter]
    group_by: List[GroupKey]
    aggregates: List[Aggregate]
    bounds: Bounds
    epsilon: float
    delta: float
    noise: Literal["laplace", "gaussian"]
    confidence: float
    time_zone: str
    tuning: Tuning
    engine: Literal["beam"]


class Cell(TypedDict, total=False):
    value: float
    lower: float
    upper: float
    bounding_loss: float
    hidden: bool
    reason: str


class ResultAggregate(TypedDict, total=False):
    name: str
    op: str
    column: str
    mechanism: str
    epsilon: float
    delta: float
    lower: float
    upper: float
    auto_bounds: bool
    bounds_epsilon: float
    contribution_bounds_per_group: GroupBounds
    tuned: bool


class TunedAggregate(TypedDict, total=False):
    name: str
    lower: float
    upper: float
    bounding_loss: float
    expected_error: float
    max_norm: float
    correction: float


class TuningReport(TypedDict, total=False):
    share: float
    epsilon: float
    max_groups: int
    noise: str
    aggregates: List[TunedAggregate]
    reason: str


class ResultRow(TypedDict, total=False):
    key: List[str]
    cells: List[Cell]


class Result(TypedDict, total=False):
    group_by: List[str]
    aggregates: List[ResultAggregate]
    rows: List[ResultRow]
    confidence: float
    cost: Cost
    thresholded: bool
    snapshot: int
    cached: bool
    budget: BudgetStatus
    tuning: TuningReport


class ExplainedAggregate(TypedDict, total=False):
    name: str
    op: str
    mechanism: str
    epsilon: float
    delta: float
    half_width: float
    note: str


class Explanation(TypedDict, total=False):
    cost: Cost
    confidence: float
    thresholded: bool
    accuracy_first: bool
    aggregates: List[ExplainedAggregate]
    budget: BudgetStatus


class IngestResult(TypedDict, total=False):
    rows: int
    duplicate: bool


class ImportResult(TypedDict, total=False):
    rows: int
    skipped: int
    skipped_reasons: Dict[str, int]
    batches: int
    seconds: float


class ErasureReceipt(TypedDict, total=False):
    id: str
    tenant: str
    subjects: int
    rows: int
    requested_at: str
    status: Literal["pending", "complete"]
    completed_at: str


class SubjectExport(TypedDict, total=False):
    tenant: str
    customer_id: str
    exported_at: str
    rows: int
    columns: List[str]
    events: List[Dict[str, Any]]


class ConsentRecord(TypedDict, total=False):
    customer_id: str
    purpose: str
    granted: bool
    time: str
    source: str


class Consent(TypedDict, total=False):
    seq: int
    purpose: str
    granted: bool
    time: str
    source: str
    recorded_at: str


class ConsentStanding(TypedDict, total=False):
    policy: Literal["opt-in", "opt-out"]
    granted: bool


class ConsentStatus(TypedDict, total=False):
    purposes: Dict[str, ConsentStanding]
    history: List[Consent]


class ConsentsRecorded(TypedDict, total=False):
    recorded: int
    version: int


class AuditEntry(TypedDict, total=False):
    seq: int
    time: str
    actor: str
    tenant_id: str
    action: str
    target: str
    outcome: str
    details: Dict[str, str]
    prev_hash: str
    hash: str


class HEDataset(TypedDict, total=False):
    id: str
    preset: str
    rows: int
    columns: List[Dict[str, Any]]
    ops: List[str]
    bytes: int
    created: str


class HEJobSpec(TypedDict, total=False):
    op: str
    column: str
    group: str
    columns: List[str]
    target: str


class HEJob(TypedDict, total=False):
    id: str
    dataset: str
    job: HEJobSpec
    status: Literal["queued", "running", "done", "failed"]
    error: str
    result_bytes: int
    created: str
    finished: str


class Federation(TypedDict, total=False):
    id: str
    name: str
    preset: str
    locations: List[str]
    threshold: int
    seed: str
    phase: Literal["keys", "shares", "ready"]
    key_shares: List[int]
    sealed_shares: List[int]
    transport_keys: List[str]
    rounds: int
    created: str


class FederationCreated(TypedDict, total=False):
    federation: Federation
    tokens: List[str]


class ShareAccepted(TypedDict, total=False):
    accepted: bool
    duplicate: bool


class FederatedQuery(TypedDict, total=False):
    subject_column: str
    category_column: str
    value_column: str
    categories: List[str]
    aggregates: List[Literal["count", "sum"]]
    lower: int
    upper: int
    max_rows_per_subject: int
    max_locations_per_subject: int
    epsilon: float
    delta: float


class Round(TypedDict, total=False):
    federation: str
    number: int
    status: Literal["collecting", "decrypting", "done", "failed"]
    reason: str
    query: FederatedQuery
    threshold: int
    opened: str
    contribute_until: str
    decrypt_until: str
    contributors: List[int]
    ready: List[int]
    active: List[int]
    decryption_shares: List[int]
    result_available: bool
    noise_std: Dict[str, float]


class ModelCharge(TypedDict, total=False):
    what: str
    rho: float


# Functional form: one key is "lambda", a Python keyword.
Model = TypedDict("Model", {
    "format_version": int,
    "name": str,
    "version": int,
    "kind": Literal["ridge", "logistic"],
    "schema": Dict[str, Any],
    "features": List[str],
    "coefficients": List[float],
    "epsilon": float,
    "delta": float,
    "rho": float,
    "charges": List[ModelCharge],
    "locations": int,
    "threshold": int,
    "rounds": int,
    "lambda": float,
    "trained": str,
    "training_seconds": float,
}, total=False)


class ModelSummary(TypedDict, total=False):
    name: str
    versions: int
    kind: str
    epsilon: float
    trained: str


class ModelList(TypedDict, total=False):
    models: List[ModelSummary]


class FairnessConfig(TypedDict, total=False):
    attribute: str
    groups: List[str]
    threshold: float
    edges: List[float]
    epsilon: float
    delta: float
    confidence: float
    reference: str


class FairnessRecord(TypedDict, total=False):
    group: str
    score: float
    label: bool


class FairnessRate(TypedDict, total=False):
    value: float
    lower: float
    upper: float


class FairnessBin(TypedDict, total=False):
    lower: float
    upper: float
    count: float
    observed: FairnessRate


FairnessGroup = TypedDict("FairnessGroup", {
    "name": str,
    "count": float,
    "selection_rate": FairnessRate,
    "true_positive_rate": FairnessRate,
    "false_positive_rate": FairnessRate,
    "calibration": List[FairnessBin],
}, total=False)


class FairnessDisparity(TypedDict, total=False):
    metric: str
    group: str
    reference: str
    difference: FairnessRate
    ratio: FairnessRate
    flag: str


class FairnessReport(TypedDict, total=False):
    config: FairnessConfig
    reference: str
    groups: List[FairnessGroup]
    disparities: List[FairnessDisparity]
    rho: float
    sigma: float
    charges: List[ModelCharge]


class FairnessAudit(TypedDict, total=False):
    id: str
    model: str
    model_version: int
    created: str
    report: FairnessReport
    markdown: str
