"""The local CA's pure parts: which names it may sign, what its certificates say, and that a
verifier refuses what its name constraints do not permit."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from homeport.tls import ca
from homeport.tls.names import DEFAULT_LEAF, LeafSpec, leaf_for, normalize, signable

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def root() -> ca.Issued:
    return ca.make_root(NOW)


def verify(root: ca.Issued, leaf: ca.Issued, name: str, at: dt.datetime = NOW) -> None:
    sub: x509.DNSName | x509.IPAddress
    try:
        sub = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        sub = x509.DNSName(name)
    verifier = PolicyBuilder().store(Store([root.cert])).time(at).build_server_verifier(sub)
    verifier.verify(leaf.cert, [])


@pytest.mark.parametrize(
    ("sni", "key", "sans"),
    [
        (None, "localhost", ("localhost", "127.0.0.1", "::1")),
        ("localhost", "localhost", ("localhost", "127.0.0.1", "::1")),
        ("LocalHost.", "localhost", ("localhost", "127.0.0.1", "::1")),
        ("api.localhost", "api.localhost", ("api.localhost", "*.api.localhost")),
        ("API.Localhost", "api.localhost", ("api.localhost", "*.api.localhost")),
        ("v1.api.localhost", "api.localhost", ("api.localhost", "*.api.localhost")),
        ("a.b.api.localhost", "b.api.localhost", ("b.api.localhost", "*.b.api.localhost")),
        ("example.com", "localhost", ("localhost", "127.0.0.1", "::1")),
        ("localhost.example.com", "localhost", ("localhost", "127.0.0.1", "::1")),
        ("evil-localhost", "localhost", ("localhost", "127.0.0.1", "::1")),
        ("bad_name.localhost", "localhost", ("localhost", "127.0.0.1", "::1")),
        ("-x.localhost", "localhost", ("localhost", "127.0.0.1", "::1")),
        ("..localhost", "localhost", ("localhost", "127.0.0.1", "::1")),
    ],
)
def test_leaf_for_each_sni_name(sni: str | None, key: str, sans: tuple[str, ...]) -> None:
    assert leaf_for(sni) == LeafSpec(key, sans)


def test_names_the_ca_may_sign() -> None:
    assert signable("localhost")
    assert signable("x.y.localhost")
    assert signable("127.0.0.1")
    assert signable("127.255.0.9")
    assert signable("::1")
    assert not signable("example.com")
    assert not signable("10.0.0.1")
    assert not signable("::2")
    assert not signable("localhost.com")
    assert not signable("xlocalhost")
    assert normalize("a" * 64 + ".localhost") is None  # a label is at most 63 octets


def test_root_is_a_name_constrained_ten_year_ca(root: ca.Issued) -> None:
    c = root.cert
    bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length == 0
    nc = c.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    permitted = nc.value.permitted_subtrees or []
    assert {g.value for g in permitted if isinstance(g, x509.DNSName)} == {
        "localhost",
        ".localhost",
    }
    assert {str(g.value) for g in permitted if isinstance(g, x509.IPAddress)} == {
        "127.0.0.0/8",
        "::1/128",
    }
    assert c.not_valid_after_utc - NOW == dt.timedelta(days=3650)
    assert c.not_valid_before_utc <= NOW


def test_leaf_chains_to_the_root_for_its_names(root: ca.Issued) -> None:
    leaf = ca.make_leaf(root, leaf_for("v1.api.localhost"), NOW)
    for name in ("api.localhost", "v1.api.localhost", "other.api.localhost"):
        verify(root, leaf, name)
    with pytest.raises(VerificationError):
        verify(root, leaf, "a.b.api.localhost")  # a wildcard covers one label only
    eku = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.not_after - NOW == dt.timedelta(days=30)


def test_default_leaf_serves_loopback_addresses(root: ca.Issued) -> None:
    leaf = ca.make_leaf(root, DEFAULT_LEAF, NOW)
    for name in ("localhost", "127.0.0.1", "::1"):
        verify(root, leaf, name)


def test_leaf_is_refused_after_it_expires(root: ca.Issued) -> None:
    leaf = ca.make_leaf(root, leaf_for("api.localhost"), NOW)
    verify(root, leaf, "api.localhost", NOW + dt.timedelta(days=29))
    with pytest.raises(VerificationError):
        verify(root, leaf, "api.localhost", NOW + dt.timedelta(days=31))


def test_the_ca_refuses_names_outside_its_constraints(root: ca.Issued) -> None:
    with pytest.raises(ca.NotSignable):
        ca.make_leaf(root, LeafSpec("example.com", ("example.com",)), NOW)
    with pytest.raises(ca.NotSignable):
        ca.make_leaf(root, LeafSpec("x", ("localhost", "10.0.0.1")), NOW)


@pytest.mark.parametrize("name", ["example.com", "10.0.0.1", "localhost.example.com"])
def test_a_verifier_refuses_a_leaf_outside_the_name_constraints(root: ca.Issued, name: str) -> None:
    """What a leaked key could sign: a leaf built past make_leaf's own check is still refused
    by a verifier, because the root's critical NameConstraints forbid it."""
    rogue = ca.build_leaf(root, LeafSpec(name, (name,)), NOW)
    with pytest.raises(VerificationError, match=r"(?i)constraint|subtree"):
        verify(root, rogue, name)


def test_renewal_window() -> None:
    end = NOW + dt.timedelta(days=30)
    assert not ca.needs_renewal(end, NOW)
    assert not ca.needs_renewal(end, end - dt.timedelta(days=10, seconds=1))
    assert ca.needs_renewal(end, end - dt.timedelta(days=9))
    # in the root's last days a leaf ends with the root: issuing again gains nothing
    assert not ca.needs_renewal(end, end - dt.timedelta(days=9), root_not_after=end)
    assert ca.needs_renewal(end, end - dt.timedelta(days=9), root_not_after=end + dt.timedelta(1))


def test_load_refuses_a_key_of_another_certificate(root: ca.Issued) -> None:
    other = ca.make_root(NOW)
    with pytest.raises(ValueError, match="does not match"):
        ca.load(root.cert_pem(), other.key_pem())
    assert ca.load(root.cert_pem(), root.key_pem()).fingerprint() == root.fingerprint()
