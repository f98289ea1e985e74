// Package privalytics holds the domain of Privalytics, privacy-preserving analytics
// for small businesses: events and their schema, tenants and API keys, queries and
// their differentially private results, the privacy budget and its ledger, and the
// interfaces of the stores. It imports nothing of ours; adapters (store/), the
// ingest pipeline (ingest/), the query engine (analytics/, dp/) and the HTTP API
// (api/) all depend on it, and cmd/privalytics wires them together.
//
// The privacy unit is the customer (subject) within a tenant: every released number
// is (ε, δ)-differentially private with respect to adding or removing all events of
// one customer, given the bounds the query declares and the executor enforces.
package privalytics
