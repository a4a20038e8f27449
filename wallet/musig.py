"""MuSig2 key aggregation (BIP327 KeySort and KeyAgg) and the synthetic xpub of an aggregate
key (BIP328), as musig() descriptor key expressions (BIP390) need them.

Only the public side: the aggregate key of a set of participant keys, and the extended public
key from which unhardened children of an aggregate are derived. Signing (nonces, partial
signatures) is not here. Point arithmetic is libsecp256k1's, through coincurve.
"""

from __future__ import annotations

from collections.abc import Sequence

from coincurve import PublicKey

from consensus.hashes import tagged_hash
from wallet.bip32 import ExtKey

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# BIP328: the chain code of every aggregate key's synthetic xpub
SYNTHETIC_CHAIN_CODE = bytes.fromhex(
    "868087ca02a6f974c4598924c36b57762d32cb45717167e300622c7167e38965")


class MuSigError(ValueError):
    """A participant key that is not a valid compressed key, or an aggregate at infinity."""


def key_sort(pubkeys: Sequence[bytes]) -> list[bytes]:
    """BIP327 KeySort: the 33-byte keys in lexicographic order."""
    return sorted(pubkeys)


def key_agg(pubkeys: Sequence[bytes]) -> bytes:
    """BIP327 KeyAgg of the 33-byte compressed keys in the order given: the aggregate key Q
    as a 33-byte compressed key (its x coordinate is the x-only key a taproot output uses).
    Raises MuSigError for an invalid participant key or an aggregate at infinity."""
    if not pubkeys:
        raise MuSigError("no keys to aggregate")
    points = []
    for i, pk in enumerate(pubkeys):
        if len(pk) != 33 or pk[0] not in (2, 3):
            raise MuSigError(f"invalid public key of participant {i}")
        try:
            points.append(PublicKey(bytes(pk)))
        except ValueError:
            raise MuSigError(f"invalid public key of participant {i}") from None
    list_hash = tagged_hash("KeyAgg list", b"".join(pubkeys))
    second = next((pk for pk in pubkeys if pk != pubkeys[0]), None)
    terms = []
    for pk, point in zip(pubkeys, points, strict=True):
        if pk == second:
            terms.append(point)
            continue
        coef = int.from_bytes(tagged_hash("KeyAgg coefficient", list_hash + pk), "big")
        coef %= SECP256K1_N
        if coef == 0:  # negligible; the term is then the point at infinity
            continue
        terms.append(point.multiply(coef.to_bytes(32, "big")))
    if not terms:
        raise MuSigError("the aggregate key is the point at infinity")
    try:
        q = terms[0] if len(terms) == 1 else PublicKey.combine_keys(terms)
    except ValueError:
        raise MuSigError("the aggregate key is the point at infinity") from None
    return q.format(compressed=True)


def aggregate_sorted(pubkeys: Sequence[bytes]) -> bytes:
    """The aggregate of a musig() expression: KeyAgg of the keys after KeySort (BIP390)."""
    return key_agg(key_sort(pubkeys))


def synthetic_xpub(aggregate: bytes) -> ExtKey:
    """BIP328: the extended public key of an aggregate key (depth 0, no parent, child 0, the
    fixed chain code), from which unhardened children are derived as from any xpub."""
    return ExtKey(0, b"\x00" * 4, 0, SYNTHETIC_CHAIN_CODE, bytes(aggregate), False)
