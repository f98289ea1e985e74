// Package wire holds the JSON bodies of the Privalytics HTTP API: every request
// and response of the tenant, key, event, import, consent, subject, erasure,
// notice, audit, budget and query routes, as plain structs.
//
// It imports only the standard library so that the Go SDK (api/client), which
// is built on it, pulls in nothing of the server: no Arrow, no Lattigo, no gin.
// The server (api) encodes and decodes the same structs, so the SDK and the
// server cannot drift apart; where a body mirrors a domain type of the root
// package, api converts, and a test there checks that both have the same JSON
// fields.
package wire
