// Package federation is the franchise protocol of Privalytics: N locations pool
// aggregate figures under a collective key (Lattigo mhe), a server that only
// relays and adds ciphertexts, and a franchisor who receives the DP total.
//
// Cryptography: the locations run the collective public-key generation (CKG)
// and share their secret keys t-of-N (Shamir, Mouchet et al. 2022) through the
// server, each share sealed to its recipient (X25519, HKDF-SHA256, AES-GCM). A
// round's contributions are BGV encryptions under the collective key; the
// server adds them, and t live locations re-encrypt the sum towards the
// franchisor's public key (public-key switching) with flooding noise, so that
// the franchisor learns the sum and nothing of the locations' key shares.
//
// Threat model: locations and server are semi-honest (they follow the protocol
// and try to learn from what they see). The server sees only ciphertexts, sealed
// shares and public keys; fewer than t locations together learn nothing of the
// collective secret. There are no proofs of input validity: a malicious
// location can skew the total but cannot read anyone's figures.
//
// Differential privacy: each location adds to every cell a rounded Gaussian
// noise share of variance σ²/t (the DP library's secure sampler), where σ is
// the Gaussian mechanism's scale for the round's ε, δ and sensitivity. The
// release is (ε, δ)-DP provided at least t locations contribute (the server
// refuses to release otherwise) and each location's share is honest; dropped-out
// locations only remove their own noise and data. See docs/franchise.md.
package federation
