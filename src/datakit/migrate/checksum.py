"""The checksum of a migration file: SHA-256 of its bytes, in hex.

Computed with the interpreter's own SHA-256 where it has one: `hashlib` loads OpenSSL,
which costs a start-up more than hashing a few hundred small files does.
"""

try:
    from _sha256 import sha256 as _sha256  # Python 3.11
except ImportError:  # pragma: no cover - other versions
    try:
        from _sha2 import sha256 as _sha256  # Python 3.12 and later
    except ImportError:
        from hashlib import sha256 as _sha256


def sha256(data: bytes) -> str:
    return _sha256(data).hexdigest()
