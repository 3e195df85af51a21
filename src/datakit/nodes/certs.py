"""X.509 for a stack: its CA, a certificate per node (SANs = the node's addresses), and
what a certificate says of itself (who issued it, when it expires).

Pure functions of PEM text, free of Pulumi and of files: infra/certs.py keeps their results
in the stack's state (the keys as secrets), nodes/tls.py writes them into node folders, and
verify reads them back. EC P-256 keys: small, fast handshakes, accepted by PostgreSQL,
Redis, Kafka (JSSE), etcd (Go) and Python's ssl alike.

    >>> ca = new_ca("datakit local CA")
    >>> pair = issue(ca, "pg-1", ["127.0.0.1", "localhost", "pg-1"])
    >>> not_after(pair.cert).year > 2000
    True
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from datakit.errors import DatakitError

CA_DAYS = 3650
NODE_DAYS = 365
# Clock skew between machines: a certificate is valid from a little before it was made.
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, both PEM text."""

    cert: str
    key: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "datakit"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_ca(common_name: str, *, days: int = CA_DAYS) -> Pair:
    """A self-signed CA that may sign node certificates and nothing below them."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Pair(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue(ca: Pair, common_name: str, hosts: list[str], *, days: int = NODE_DAYS) -> Pair:
    """A certificate for `common_name`, signed by `ca`, valid for every address in `hosts`
    (IPs and DNS names) and for both ends of a link: a node serves with it and presents it
    to its peers (replication, raft, Patroni's calls to its members)."""
    if not hosts:
        raise DatakitError(f"certificate for {common_name}: no address to issue it for")
    ca_cert = x509.load_pem_x509_certificate(ca.cert.encode())
    ca_key = serialization.load_pem_private_key(ca.key.encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=True, key_agreement=True,
                content_commitment=False, data_encipherment=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return Pair(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


# --------------------------------------------------------------------------- reading


def load(pem: str, *, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise DatakitError(f"{what}: not a PEM certificate ({exc})") from None


def not_after(pem: str, *, what: str = "certificate") -> dt.datetime:
    return load(pem, what=what).not_valid_after_utc


def subject(pem: str, *, what: str = "certificate") -> str:
    cert = load(pem, what=what)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value  # type: ignore


def hosts(pem: str, *, what: str = "certificate") -> list[str]:
    """The addresses a certificate is valid for (its SANs)."""
    san = load(pem, what=what).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return [str(v) for v in san.value.get_values_for_type(x509.IPAddress)] + \
        san.value.get_values_for_type(x509.DNSName)


def signed_by(pem: str, ca_pem: str) -> bool:
    """Whether `ca_pem` signed `pem` (a foreign certificate on a node is not)."""
    cert, ca = load(pem, what="certificate"), load(ca_pem, what="CA")
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):  # another issuer or key type
        return False
    return True


def problems(pem: str, ca_pem: str, *, what: str, within_days: int = 30) -> list[str]:
    """What is wrong with a node's certificate: foreign, expired or expiring soon."""
    out = []
    if not signed_by(pem, ca_pem):
        out.append(f"{what}: its certificate ({subject(pem, what=what)!r}) is not signed by "
                   "the stack's CA; reissue it: raise datakit:tls.generation and run up")
    left = not_after(pem, what=what) - _now()
    if left.total_seconds() <= 0:
        out.append(f"{what}: its certificate expired on {not_after(pem):%Y-%m-%d}; reissue "
                   "it: raise datakit:tls.generation and run up")
    elif left < dt.timedelta(days=within_days):
        out.append(f"{what}: its certificate expires on {not_after(pem):%Y-%m-%d}, within "
                   f"{within_days} days; reissue it: raise datakit:tls.generation and run up")
    return out
