// Package learn trains differentially private models across the locations of
// a franchise federation (he/federation) and scores them locally.
//
// Guarantee: customers are the privacy unit. Each location bounds every
// customer to one row (MaxLocationsPerSubject = 1 is the franchisor's declared
// assumption, as for federated queries), scales features into the unit ball
// with public bounds, and adds its share of Gaussian noise (dp.AddGaussianShares)
// to the sufficient statistics or gradients it encrypts; any t honest shares
// carry the full σ, so what the franchisor decrypts is ρ-zCDP per round and the
// rounds add up against the model's stated budget (Accountant).
//
// Threat model: the server sees only ciphertexts under the collective key and
// sums them; the franchisor sees only the noisy sums after t locations'
// decryption shares; a location sees its own customers and the released model.
package learn
