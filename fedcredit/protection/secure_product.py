"""Two-party secure matrix product Z_left^T Z_right with a dealer's correlated randomness (Beaver).

Party P holds Z_left (n × a), party Q holds Z_right (n × b), rows in the same (PSI-aligned) order.
The coordinator acts as the dealer. All arithmetic is in the ring Z_2^64 (numpy uint64, whose
wrap-around is reduction mod 2^64); reals are fixed point with FRACTION_BITS fraction bits.

    dealer:  seeds s_L, s_R (fresh, 32 random bytes each); A = mask(s_L, n, a), B = mask(s_R, n, b);
             C1 uniform, C2 = A^T B − C1.  Sends (s_L, C1) to P and (s_R, C2) to Q.
    P → Q:   E = Z_left − A        Q → P:  F = Z_right − B      (end-to-end encrypted, party to party)
    P:       share_P = A^T F + C1
    Q:       share_Q = E^T F + E^T B + C2  (= E^T Z_right + C2)
    share_P + share_Q = A^T Z_r − A^T B + A^T B + Z_l^T Z_r − A^T Z_r = Z_left^T Z_right   (mod 2^64)

Beaver (1991), "Efficient multiparty protocols using circuit randomization"; the matrix form with
a dealer is the one in e.g. SecureML (Mohassel & Zhang 2017, §4.1, "multiplication triplets").

Threat model: semi-honest (each party follows the protocol) and non-colluding (the dealer colludes
with neither party). The dealer sees the seeds and C1, C2 but never E or F: those travel encrypted
end to end between P and Q (the relay sees ciphertext only); the share sent to the label holder
travels encrypted too (the dealer knows C2, so share_Q would tell it E^T Z_right). A party sees only the other's masked
matrix, which is the other's input plus a mask that is uniform on Z_2^64 and unknown to it, hence
itself uniform and independent of the input (a one-time pad in the ring). Each share alone is
uniform (C1 is). The product goes to the label holder only, after each party adds its DP noise to
its share (`add_noise`); what the sum reveals is exactly the noisy product.
Proven here: correctness (the algebra above, exact in the ring) and perfect hiding of each
party's input from the other party and of the output from the dealer, in the semi-honest,
non-colluding model, assuming AES-256-CTR is a PRG. Not proven or provided: security against a
malicious party or dealer (no MACs: a cheater can shift the result undetected), against a
dealer colluding with a party (the dealer's seeds unmask E and F), or anything about what the
released (noisy) product itself reveals — that is the job of the DP noise (fedcredit.privacy.gram).

Bound (checked, ValueError): the ring holds a signed product exactly when every entry of
Z_left^T Z_right, at scale 2^(2f), lies in (−2^63, 2^63). By Cauchy–Schwarz
|Σ_i x_ij y_ik| ≤ ||X||_F · ||Y||_F, so it suffices that each party's matrix has squared Frobenius
norm ≤ 2^(62 − 2f) = 2^30 for f = 16 (`masked` checks its own input), leaving 2^62 of headroom for
the DP noise (`add_noise` accepts |noise| ≤ 2^(62 − 2f)). E.g. n ≤ 2^20 rows of L2 norm ≤ 2^5, or
25,000 rows of norm ≤ 207. Entries themselves must satisfy |x| ≤ MAX_ABS = 2^10 (`encode`).
Fixed-point error: encoding rounds each value by ≤ 2^-(f+1), so an entry of the product is off by
at most n · 2^-(f+1) · (max|x| + max|y|) (≈ 1e-5 · n · max|x| for f = 16), far below DP noise.
"""

from __future__ import annotations

import hashlib
import secrets

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

FRACTION_BITS = 16
MAX_ABS = 2.0 ** 10                         # largest |value| `encode` accepts
MAX_SQUARED_NORM = 2.0 ** (62 - 2 * FRACTION_BITS)   # largest ||Z||_F² of one party's input
SEED_BYTES = 32
_SCALE = float(2 ** FRACTION_BITS)
_PRODUCT_SCALE = float(2 ** (2 * FRACTION_BITS))
_MASK_DOMAIN = b"fedcredit.secure_product.mask.v1"

__all__ = ["FRACTION_BITS", "MAX_ABS", "MAX_SQUARED_NORM", "add_noise", "dealer_shares", "decode_product",
           "encode", "left_share", "mask", "masked", "new_seed", "reconstruct", "right_share"]


def encode(x: np.ndarray) -> np.ndarray:
    """Float array → uint64 fixed point round(x · 2^f) in two's complement (same shape).

    ValueError if a value is not finite or |x| > MAX_ABS."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot encode a non-finite value (NaN or infinity)")
    if x.size and np.max(np.abs(x)) > MAX_ABS:
        raise ValueError(f"|value| {np.max(np.abs(x)):.4g} exceeds the fixed-point bound {MAX_ABS:g}: "
                         "clip rows to their public norm bound first")
    return np.rint(x * _SCALE).astype(np.int64).view(np.uint64)


def _decode(v: np.ndarray, scale: float) -> np.ndarray:
    return np.asarray(v, dtype=np.uint64).view(np.int64).astype(np.float64) / scale


def decode_product(v: np.ndarray) -> np.ndarray:
    """uint64 at scale 2^(2f) (two's complement) → float64."""
    return _decode(v, _PRODUCT_SCALE)


def new_seed() -> bytes:
    """A fresh PRG seed: 32 bytes from the operating system's CSPRNG (`secrets`)."""
    return secrets.token_bytes(SEED_BYTES)


def mask(seed: bytes, rows: int, cols: int) -> np.ndarray:
    """The uint64 matrix (rows × cols) of the AES-256-CTR keystream under key `seed`.

    The initial counter block is SHA-256(domain ‖ rows ‖ cols)[:8] ‖ 0^8, so one seed used for
    two shapes never yields related masks; every matrix gets its own fresh seed anyway."""
    if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_BYTES:
        raise ValueError(f"a mask seed is {SEED_BYTES} bytes (use new_seed())")
    if rows < 0 or cols < 0:
        raise ValueError(f"negative shape ({rows}, {cols})")
    nonce = hashlib.sha256(_MASK_DOMAIN + rows.to_bytes(8, "big") + cols.to_bytes(8, "big")).digest()[:8]
    encryptor = Cipher(algorithms.AES(bytes(seed)), modes.CTR(nonce + bytes(8))).encryptor()
    stream = encryptor.update(bytes(8 * rows * cols)) + encryptor.finalize()
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64).reshape(rows, cols)


def dealer_shares(seed_left: bytes, seed_right: bytes, rows: int, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The dealer's correlated randomness: (C1, C2), uint64 a × b, C1 uniform, C1 + C2 = A^T B with
    A = mask(seed_left, rows, a), B = mask(seed_right, rows, b)."""
    if seed_left == seed_right:
        raise ValueError("the two masks need distinct seeds")
    A, B = mask(seed_left, rows, a), mask(seed_right, rows, b)
    c1 = mask(new_seed(), a, b)
    return c1, A.T @ B - c1


def _check_input(z_fixed: np.ndarray) -> np.ndarray:
    z = np.asarray(z_fixed)
    if z.dtype != np.uint64 or z.ndim != 2:
        raise ValueError(f"expected a 2-D uint64 matrix from encode() (got {z.dtype}, {z.ndim}-D)")
    values = z.view(np.int64).astype(np.float64) / _SCALE
    squared = float(np.einsum("ij,ij->", values, values))
    if squared > MAX_SQUARED_NORM:
        raise ValueError(f"squared Frobenius norm {squared:.4g} of the input exceeds {MAX_SQUARED_NORM:g}: "
                         "the product would overflow the ring (fewer rows or a smaller row-norm bound)")
    return z


def masked(z_fixed: np.ndarray, seed: bytes) -> np.ndarray:
    """The masked input a party sends to the other: E = Z − A (left, seed_left) or F = Z − B (right).

    `z_fixed` is encode()'s n × k output; ValueError if its squared Frobenius norm exceeds
    MAX_SQUARED_NORM (see the module's bound)."""
    z = _check_input(z_fixed)
    return z - mask(seed, *z.shape)


def _as_ring(m: np.ndarray, name: str) -> np.ndarray:
    m = np.asarray(m)
    if m.dtype != np.uint64 or m.ndim != 2:
        raise ValueError(f"{name} must be a 2-D uint64 matrix (got {m.dtype}, {m.ndim}-D)")
    return m


def left_share(seed_left: bytes, F: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """P's share A^T F + C1 (a × b) from its mask seed, Q's masked matrix F (n × b) and C1."""
    F, c1 = _as_ring(F, "F"), _as_ring(c1, "C1")
    A = mask(seed_left, F.shape[0], c1.shape[0])
    if c1.shape[1] != F.shape[1]:
        raise ValueError(f"C1 is {c1.shape}, F has {F.shape[1]} columns")
    return A.T @ F + c1


def right_share(E: np.ndarray, F_own: np.ndarray, seed_right: bytes, c2: np.ndarray) -> np.ndarray:
    """Q's share E^T F + E^T B + C2 = E^T Z_right + C2 (a × b) from P's masked matrix E (n × a), its
    own masked matrix F (n × b), its mask seed and C2."""
    E, F_own, c2 = _as_ring(E, "E"), _as_ring(F_own, "F"), _as_ring(c2, "C2")
    if E.shape[0] != F_own.shape[0] or c2.shape != (E.shape[1], F_own.shape[1]):
        raise ValueError(f"shapes do not agree: E {E.shape}, F {F_own.shape}, C2 {c2.shape}")
    z_right = F_own + mask(seed_right, *F_own.shape)
    return E.T @ z_right + c2


def add_noise(share: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """A share plus float `noise` (same shape, in the product's units) encoded at scale 2^(2f).

    ValueError if |noise| > MAX_SQUARED_NORM (it would leave no headroom in the ring)."""
    share = _as_ring(share, "share")
    noise = np.asarray(noise, dtype=np.float64)
    if noise.shape != share.shape:
        raise ValueError(f"noise {noise.shape} does not match the share {share.shape}")
    if not np.all(np.isfinite(noise)) or (noise.size and np.max(np.abs(noise)) > MAX_SQUARED_NORM):
        raise ValueError(f"noise must be finite and at most {MAX_SQUARED_NORM:g} in absolute value")
    return share + np.rint(noise * _PRODUCT_SCALE).astype(np.int64).view(np.uint64)


def reconstruct(*shares: np.ndarray) -> np.ndarray:
    """The sum of the shares in the ring, decoded: the float64 product (plus any noise added)."""
    if not shares:
        raise ValueError("no shares to reconstruct")
    total = _as_ring(shares[0], "share").copy()
    for s in shares[1:]:
        s = _as_ring(s, "share")
        if s.shape != total.shape:
            raise ValueError(f"shares differ in shape: {total.shape} vs {s.shape}")
        total += s
    return decode_product(total)
