"""The local CA's certificates, built with ``cryptography``: no files, no clock of its own.

``make_root(now)`` and ``make_leaf(root, spec, now)`` take the time they are told, so tests
drive expiry and renewal with a clock they control. Keys are ECDSA P-256: a leaf is issued
inside a TLS handshake (the SNI callback), and P-256 key generation and signing take well
under a millisecond where RSA-2048 generation takes tens (bench/bench_tls_issue.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from homeport.tls.names import PERMITTED_DNS, PERMITTED_IPS, LeafSpec, signable

ROOT_LIFETIME = dt.timedelta(days=3650)
LEAF_LIFETIME = dt.timedelta(days=30)
#: A leaf with less than this left is issued again before it is served.
RENEW_BEFORE = dt.timedelta(days=10)
#: Back-dating covers clients whose clock is a little behind this one.
BACKDATE = dt.timedelta(hours=1)
ORGANIZATION = "homeport"
ROOT_CN = "homeport local development CA"


class NotSignable(ValueError):
    """A name outside the root's name constraints was asked for."""


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def not_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc

    def common_name(self) -> str:
        """The subject CN: the nickname NSS databases hold the root under."""
        attrs = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else ""

    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, hex."""
        return hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name_constraints() -> x509.NameConstraints:
    dns: list[x509.GeneralName] = [x509.DNSName(n) for n in PERMITTED_DNS]
    ips: list[x509.GeneralName] = [x509.IPAddress(n) for n in PERMITTED_IPS]
    return x509.NameConstraints(permitted_subtrees=dns + ips, excluded_subtrees=None)


def make_root(now: dt.datetime, key: ec.EllipticCurvePrivateKey | None = None) -> Issued:
    """A self-signed root valid 10 years, constrained (critical) to localhost and loopback."""
    key = key or new_key()
    # The fingerprint of the public key in the name: two machines' roots never share a
    # subject, so a browser never confuses one with the other (mkcert puts user@host there).
    pub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tag = hashlib.sha256(pub).hexdigest()[:12]
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{ROOT_CN} {tag}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(_name_constraints(), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_leaf(
    root: Issued,
    spec: LeafSpec,
    now: dt.datetime,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Issued:
    """A 30-day server leaf for ``spec.sans``; refuses names the root may not sign."""
    bad = [n for n in spec.sans if not signable(n.removeprefix("*."))]
    if bad:
        raise NotSignable(f"the local CA may not sign {', '.join(bad)}")
    return build_leaf(root, spec, now, key)


def build_leaf(
    root: Issued,
    spec: LeafSpec,
    now: dt.datetime,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Issued:
    """The leaf, unchecked: ``make_leaf`` is the way in; tests use this one to prove that a
    verifier refuses what the root's name constraints do not permit."""
    key = key or new_key()
    not_after = min(now + LEAF_LIFETIME, root.not_after)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                    x509.NameAttribute(NameOID.COMMON_NAME, spec.sans[0]),
                ]
            )
        )
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in spec.sans]), critical=False)
        .add_extension(aki, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    return Issued(cert, key)


def needs_renewal(
    not_after: dt.datetime, now: dt.datetime, root_not_after: dt.datetime | None = None
) -> bool:
    """Less than ``RENEW_BEFORE`` left, and a new leaf would last longer: in the root's last
    days every leaf ends with the root, and issuing again on each handshake would gain
    nothing (the doctor's ``tls.ca`` says the root itself is ending)."""
    if root_not_after is not None and not_after >= root_not_after:
        return False
    return not_after - now < RENEW_BEFORE


def load(cert_pem: bytes, key_pem: bytes) -> Issued:
    """An ``Issued`` from PEM; ValueError when either does not parse or they do not match."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the key is not an EC key")
    pub = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*pub) != cert.public_key().public_bytes(*pub):
        raise ValueError("the key does not match the certificate")
    return Issued(cert, key)
