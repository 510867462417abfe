"""Pure pieces of issue 15: unit rendering and quoting, URLs without default ports, and the
doctor's account of which way to ports 80/443 is in place."""

from __future__ import annotations

from pathlib import Path

from homeport.addr import http_url
from homeport.daemon.config import DaemonConfig
from homeport.daemon.units import UnitSpec, port_units, quote, user_unit, written_by
from homeport.doctor.checks import check_unprivileged
from homeport.doctor.records import DoctorFacts

SPEC = UnitSpec(exe="/opt/home port/bin/homeport", state_dir="/s/100%", version="9.9", home="/h")


def test_quote_escapes_what_systemd_would_read_otherwise() -> None:
    assert quote('a "b" \\c 50%') == '"a \\"b\\" \\\\c 50%%"'


def test_user_unit_quotes_an_exe_with_spaces_and_reads_back() -> None:
    text = user_unit(SPEC)
    assert 'ExecStart="/opt/home port/bin/homeport" up\n' in text
    assert 'Environment="HOMEPORT_STATE_DIR=/s/100%%"' in text
    assert written_by(text.encode()) == ("9.9", "/opt/home port/bin/homeport")
    port = user_unit(UnitSpec("/bin/homeport", "/s", "1", "/h", port=8080))
    assert "ExecStart=/bin/homeport up --port 8080\n" in port


def test_port_units_hand_each_port_to_one_service() -> None:
    spec = UnitSpec("/bin/homeport", "/s", "1", "/home/ann", user="ann", group="ann")
    files = port_units(spec, (80, 443))
    assert sorted(files) == ["homeport-ann-443.socket", "homeport-ann-80.socket",
                             "homeport-ann.service"]  # fmt: skip
    assert "FileDescriptorName=https" in files["homeport-ann-443.socket"]
    svc = files["homeport-ann.service"]
    assert "Requires=homeport-ann-80.socket homeport-ann-443.socket" in svc
    assert 'Environment="HOME=/home/ann"' in svc
    assert "[Install]" not in svc  # started by its sockets, not on its own


def test_urls_drop_the_default_port() -> None:
    assert http_url("api.localhost", 80) == "http://api.localhost"
    assert http_url("api.localhost", 443, "https") == "https://api.localhost"
    assert http_url("api.localhost", 443) == "http://api.localhost:443"
    c80 = DaemonConfig(state_dir=Path("/x"), port=80)
    assert c80.url == "http://homeport.localhost"
    assert c80.route_url("api.localhost") == "http://api.localhost"
    assert "homeport.localhost" in c80.control_hosts


def test_doctor_says_which_way_to_low_ports_is_in_place() -> None:
    units = check_unprivileged(DoctorFacts(port_units=("homeport-ann-80.socket",)))
    assert "socket units" in units.summary
    assert units.detail[0] == "in place: homeport-ann-80.socket"
    sysctl = check_unprivileged(DoctorFacts(unprivileged_start=80))
    assert sysctl.detail == ("in place: net.ipv4.ip_unprivileged_port_start = 80",)
    none = check_unprivileged(DoctorFacts(unprivileged_start=1024))
    assert any("service install --ports 80,443" in d for d in none.detail)
    assert any("never the Python interpreter" in d for d in none.detail)
