// Package he is the homomorphic-encryption core of Privalytics: named parameter
// presets, key generation, the encrypted-table format, the processor's jobs over
// ciphertexts, and the owner's decryption with noise flooding (Lattigo v5).
//
// Guarantee and threat model: the processor is honest-but-curious and holds only
// the public and evaluation keys, so it learns the table's header (schema, row
// count, declared bounds) and nothing about the values (RLWE, ≥128-bit security by
// the HE standard for every non-test preset). The owner is the only holder of the
// secret key; every decryption of a computed result adds flooding noise
// (Li–Micciancio) so that released CKKS results do not leak key material, and
// jobs are refused before computing when the declared bounds could make a
// result wrap modulo t (BGV) or overflow the modulus at the result level (CKKS).
// DP noise for release is added on top by Release (through dp/, the library's
// secure samplers), to every value and to the row count, sized from the declared
// bounds and the per-customer row cap that encryption enforced (source.go); every
// release's ε is charged first to the owner's append-only release ledger beside
// the secret key (ledger.go), which refuses releases past its budget. Decryption
// alone is not DP.
//
// Files: the owner's side is keys.go, source.go (reading and capping the
// plaintext), owner.go (key and table files), counter.go (decryptions per
// result), ledger.go and release.go; the processor's side is job.go (the
// evaluator) and processor.go (datasets, jobs, their goroutines and limits).
package he
