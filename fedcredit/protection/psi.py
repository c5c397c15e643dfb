"""Private set intersection (PSI) of customer keys: two-party ECDH-PSI on X25519.

Construction (Diffie–Hellman PSI, as in Meadows 1986 / Huberman–Franklin–Hogg 1999, and as
SecretFlow's ECDH-25519 and FATE's Curve25519 PSI do it), built only from the public X25519 API of
`cryptography` (RFC 7748) — no curve arithmetic of our own:

* a normalised key k (`fedcredit.credit.customer_keys`) becomes the 32 bytes
  u(k) = SHA-256(b"fedcredit-psi-v1\\0" || UTF-8(k)) with bit 255 cleared, read as an X25519
  u-coordinate (`X25519PublicKey.from_public_bytes`);
* a party with a fresh random secret a blinds a point with `X25519PrivateKey.exchange`, which is
  the x-only scalar product x([a]P) with a clamped a. Clamping makes a a multiple of 8, which
  clears the cofactor; a u that lies on the quadratic twist is multiplied on the twist, whose
  prime-order subgroup is as hard as the curve's (curve25519 is twist-secure) — see
  ../shared/notes/vertical-psi-scorecard-facts.md §2, checked there on 5,000 keys;
* x-only scalar products commute: x([b]([a]P)) = x([a]([b]P)) = x([ab]P), so a key held by both
  parties gives the same doubly blinded 32 bytes on both sides, and a key held by one only gives a
  value that nobody can link to anything (decisional Diffie–Hellman).

Protocol for a label holder (hub) H and passive parties P1..Pm, relayed by the coordinator:

1. H and each Pi: `PsiParty.create(keys)` — fresh secret, keys put in a secret random order;
2. H sends `blinded()` ([a]H, H's shuffled order) to every Pi; each Pi sends its `blinded()` ([b]Pi);
3. each Pi answers `reblind(H's points)` ([b][a]H, same order) to H;
4. H computes `reblind(Pi's points)` ([a][b]Pi) itself and never sends it;
5. H calls `hub_alignment({Pi: [b][a]H}, {Pi: [a][b]Pi})`: the keys of H present in EVERY party's
   set, in H's shuffled order (the agreed order), with each Pi's positions; H keeps its rows via
   `rows(...)` and sends each Pi its positions sealed end to end (`fedcredit.protection.channel`);
6. each Pi maps the positions to its rows with `rows(...)`. Row j of the shared table is then the
   same customer at every party. Between messages a party may keep `to_bytes()` and resume with
   `from_bytes()` in another process (the secret and the order, never the keys).

Threat model: semi-honest (honest-but-curious) parties and coordinator; the coordinator colludes
with no party. What each learns:

* the coordinator: every set's size (message lengths), blinded points it cannot link to keys nor
  H's points to a party's (H's re-blinded copy [a][b]Pi never leaves H), and from the length of
  each sealed positions message the joint intersection size;
* a passive party: H's set size, the joint intersection size and which of its own rows are in it
  (in H's random order) — nothing about keys it does not hold, nor whom else H aligned with;
* the hub: every party's set size and, for each party, which of its own rows that party also
  holds (pairwise intersections, hence also the joint one); nothing about a party's other keys.

One public bit survives blinding: whether a key's hash lies on the curve or on its twist (about half
of them do each; [a]P stays on P's curve). The blinded sets thus show how many of a party's keys
hash onto the curve — a count that cannot be tied to any key, as positions are in a secret random
order. A hash onto the curve alone would need field arithmetic of our own (try-and-increment with a
Legendre symbol), which this module avoids.

Not covered: malicious parties (a party may put keys it does not own into its set to test
membership — the usual limit of PSI; the consortium agreement must forbid it) and a coordinator
that swaps public keys (the semi-honest coordinator relays them faithfully).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from functools import reduce

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

POINT = 32
DOMAIN = b"fedcredit-psi-v1\0"
STATE_MAGIC = b"fedcredit-psi-state-v1\0"


def hashed_points(keys: Sequence[str]) -> bytes:
    """u(k) for every key, concatenated: len(keys) × POINT bytes, in the given order."""
    sha256, prefix = hashlib.sha256, DOMAIN
    raw = b"".join([sha256(prefix + k.encode("utf-8")).digest() for k in keys])
    points = np.frombuffer(raw, dtype=np.uint8).reshape(-1, POINT).copy()
    points[:, POINT - 1] &= 0x7F   # RFC 7748 masks bit 255 anyway; clear it so u(k) is the point as used
    return points.tobytes()


def _split(points: bytes, what: str) -> list[bytes]:
    if len(points) % POINT:
        raise ValueError(f"{what}: {len(points)} bytes is not a whole number of {POINT}-byte points")
    return [points[i:i + POINT] for i in range(0, len(points), POINT)]


def _blind(secret: X25519PrivateKey, points: bytes, what: str) -> bytes:
    """x([secret]P) for every point P, concatenated in the same order."""
    if len(points) % POINT:
        raise ValueError(f"{what}: {len(points)} bytes is not a whole number of {POINT}-byte points")
    load, exchange = X25519PublicKey.from_public_bytes, secret.exchange
    try:
        return b"".join([exchange(load(points[i:i + POINT])) for i in range(0, len(points), POINT)])
    except ValueError as exc:   # a low-order point: never from an honest party (probability ~2^-250)
        raise ValueError(f"{what}: not valid blinded points ({exc})") from exc


def _random_order(n: int) -> np.ndarray:
    """A uniformly random permutation of range(n) from the OS's CSPRNG (ties: probability < n²/2^65)."""
    draws = np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64)
    return np.argsort(draws, kind="stable").astype(np.int64)


class PsiParty:
    """One party's side of ECDH-PSI: its secret, its secret order of rows, its blinded points.

    `order[i]` is the original row index of the key at shuffled position i.
    """

    def __init__(self, secret: X25519PrivateKey, order: np.ndarray, blinded: bytes | None = None):
        self._secret = secret
        self._order = np.asarray(order, dtype=np.int64)
        self._blinded = blinded

    @classmethod
    def create(cls, keys: Sequence[str]) -> PsiParty:
        """A party for these normalised keys (row order, no repeats): fresh secret, random order.

        Blinds the keys at once (len(keys) X25519 operations); the keys are not kept.
        """
        if len(set(keys)) != len(keys):
            raise ValueError("the keys repeat: normalise and check them with customer_keys.read_keys first")
        secret = X25519PrivateKey.generate()
        order = _random_order(len(keys))
        shuffled = [keys[i] for i in order.tolist()]
        return cls(secret, order, _blind(secret, hashed_points(shuffled), "own keys"))

    @property
    def size(self) -> int:
        """Number of keys (rows) of this party."""
        return len(self._order)

    def blinded(self) -> bytes:
        """Own keys' points under own secret, in this party's shuffled order: size × POINT bytes."""
        if self._blinded is None:
            raise RuntimeError("this party was resumed from its state, which holds no keys: send blinded() "
                               "before saving the state")
        return self._blinded

    def reblind(self, theirs: bytes) -> bytes:
        """Another party's blinded points under my secret too, in the order given (same length)."""
        return _blind(self._secret, theirs, "the other party's points")

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Positions in my shuffled order → my original row indices (int64, same order)."""
        positions = np.asarray(positions)
        if positions.size and (positions.dtype.kind not in "iu" or positions.min() < 0
                               or positions.max() >= self.size):
            raise ValueError(f"positions must be integers in [0, {self.size})")
        return self._order[positions.astype(np.int64)]

    def to_bytes(self) -> bytes:
        """The secret, the number of rows and the order — to resume the protocol in another process.

        Secret material: keep it like a private key (it unblinds this party's points).
        """
        secret = self._secret.private_bytes_raw()
        return STATE_MAGIC + secret + self.size.to_bytes(8, "big") + self._order.astype("<i8").tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> PsiParty:
        """The party saved by `to_bytes` (without its blinded points: `blinded()` is refused)."""
        head = len(STATE_MAGIC)
        if not raw.startswith(STATE_MAGIC) or len(raw) < head + POINT + 8:
            raise ValueError("not a saved PSI party state")
        secret = X25519PrivateKey.from_private_bytes(raw[head:head + POINT])
        n = int.from_bytes(raw[head + POINT:head + POINT + 8], "big")
        body = raw[head + POINT + 8:]
        if len(body) != 8 * n:
            raise ValueError(f"a damaged PSI party state: {len(body)} order bytes for {n} rows")
        order = np.frombuffer(body, dtype="<i8").astype(np.int64)
        if not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError("a damaged PSI party state: the order is not a permutation")
        return cls(secret, order)


def intersect_positions(mine_double: bytes, theirs_double: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Common items of two doubly blinded sets.

    mine_double: my blinded set re-blinded by the other party (my shuffled order); theirs_double:
    their blinded set re-blinded by me (their shuffled order). Returns (positions in mine,
    positions in theirs), int64, pairwise aligned, in ascending order of my positions.
    """
    theirs = _split(theirs_double, "their doubly blinded points")
    index = {point: j for j, point in enumerate(theirs)}
    if len(index) != len(theirs):
        raise ValueError("their doubly blinded points repeat: their keys were not distinct")
    mine = _split(mine_double, "my doubly blinded points")
    if len(set(mine)) != len(mine):
        raise ValueError("my doubly blinded points repeat: my keys were not distinct")
    pairs = [(i, j) for i, j in enumerate(map(index.get, mine)) if j is not None]
    if not pairs:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    both = np.array(pairs, dtype=np.int64)
    return both[:, 0].copy(), both[:, 1].copy()


def hub_alignment(mine_double: Mapping[str, bytes],
                  theirs_double: Mapping[str, bytes]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The hub's alignment with several passive parties: its items present in EVERY party's set.

    mine_double[p]: the hub's blinded set re-blinded by party p (hub's shuffled order);
    theirs_double[p]: p's blinded set re-blinded by the hub. Returns (positions in the hub's
    shuffled order, ascending = the agreed order; {p: positions in p's shuffled order, same order}).
    """
    if not mine_double or set(mine_double) != set(theirs_double):
        raise ValueError("give both doubly blinded sets for the same, non-empty set of parties")
    if len({len(points) for points in mine_double.values()}) != 1:
        raise ValueError("the hub's doubly blinded sets differ in length between parties")
    pairs = {p: intersect_positions(mine_double[p], theirs_double[p]) for p in sorted(mine_double)}
    joint = reduce(np.intersect1d, [mine for mine, _ in pairs.values()])
    joint = np.asarray(joint, dtype=np.int64)
    return joint, {p: theirs[np.searchsorted(mine, joint)] for p, (mine, theirs) in pairs.items()}
