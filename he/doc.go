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
// DP noise for release is added on top by Release; decryption alone is not DP.
package he
