""" "Did you mean": which listeners to fingerprint, and how the near misses are ranked.

Pure: hand-built facts; the live fingerprints are tested in
tests/integration/test_explain_meant_live.py against real servers.
"""

from __future__ import annotations

from tests.unit.test_explain_diagnose import lst

from homeport.explain import Facts, parse_input
from homeport.explain.diagnose import diagnose
from homeport.explain.meant import Candidate, ports_to_probe, suggest, wanted_service

PSQL = 'psql: error: connection to server at "127.0.0.1", port 5433 failed: Connection refused'


def test_the_wanted_service_comes_from_the_tool_then_the_port() -> None:
    assert wanted_service(parse_input(PSQL)) == "postgresql"
    assert wanted_service(parse_input("connect ECONNREFUSED 127.0.0.1:6379")) == "redis"
    assert wanted_service(parse_input("connect ECONNREFUSED 127.0.0.1:4444")) is None


def test_default_ports_first_then_the_closest_above_before_below() -> None:
    p = parse_input(PSQL)
    assert ports_to_probe(p, [22, 5430, 5432, 5434, 8080, 9999]) == [5432, 5434, 5430]
    many = list(range(5420, 5450))
    assert len(ports_to_probe(p, many)) == 4


def test_a_postgres_on_its_default_port_is_offered_for_psql() -> None:
    p = parse_input(PSQL)
    f = Facts(
        port=5433,
        candidates=(
            Candidate("127.0.0.1", 5434, "http"),
            Candidate("127.0.0.1", 5432, "postgresql"),
        ),
    )
    got = suggest(p, f)
    assert got[0].target == "127.0.0.1:5432"
    assert "PostgreSQL" in got[0].why
    assert "default port" in got[0].why


def test_a_dev_server_that_moved_up_is_offered() -> None:
    p = parse_input("connect ECONNREFUSED 127.0.0.1:5173")
    f = Facts(port=5173, candidates=(Candidate("127.0.0.1", 5174, "vite"),))
    (s,) = suggest(p, f)
    assert s.target == "127.0.0.1:5174"
    assert "Vite" in s.why
    assert "1 port(s) above" in s.why


def test_a_different_service_above_is_not_a_moved_dev_server() -> None:
    p = parse_input("connect ECONNREFUSED 127.0.0.1:5173")
    f = Facts(port=5173, candidates=(Candidate("127.0.0.1", 5174, "redis"),))
    assert suggest(p, f) == ()


def test_the_other_loopback_family() -> None:
    p = parse_input("connect ECONNREFUSED 127.0.0.1:3000")
    e = diagnose(p, Facts(port=3000, listeners=(lst("::1", 3000),)))
    assert e.diagnosis[0].id == "refused.family"
    assert [m.target for m in e.did_you_mean] == ["[::1]:3000"]


def test_the_closest_route_name() -> None:
    p = parse_input("curl: (6) Could not resolve host: apii.localhost")
    e = diagnose(p, Facts(port=None, routes=("api.localhost", "web.localhost"), gateway_port=62893))
    assert [m.target for m in e.did_you_mean] == ["http://api.localhost:62893/"]


def test_nothing_is_offered_when_the_address_is_served() -> None:
    p = parse_input("connect ECONNREFUSED 127.0.0.1:3000")
    f = Facts(
        port=3000,
        listeners=(lst("127.0.0.1", 3000),),
        candidates=(Candidate("127.0.0.1", 3001, "vite"),),
    )
    e = diagnose(p, f)
    assert e.diagnosis[0].id == "refused.listening-now"
    assert e.did_you_mean == ()


def test_neighbours_are_fingerprinted_only_when_that_answers_something() -> None:
    from homeport.explain.meant import worth_fingerprinting

    assert worth_fingerprinting(parse_input(PSQL))  # psql: PostgreSQL wanted
    assert worth_fingerprinting(parse_input("connect ECONNREFUSED 127.0.0.1:5173"))  # dev port
    assert not worth_fingerprinting(parse_input("connect ECONNREFUSED 127.0.0.1:41234"))


def test_the_other_family_for_localhost_follows_its_resolution() -> None:
    from homeport.explain import Resolution

    p = parse_input("curl: (7) Failed to connect to localhost port 3000 after 0 ms: Couldn't"
                    " connect to server")  # fmt: skip
    f = Facts(
        port=3000,
        listeners=(lst("::1", 3000),),
        resolution=Resolution("localhost", ("127.0.0.1",)),
        localhost=Resolution("localhost", ("127.0.0.1",)),
    )
    assert [m.target for m in suggest(p, f)] == ["[::1]:3000"]


def test_a_client_that_names_no_port_is_offered_its_service_on_its_default_ports() -> None:
    p = parse_input("openai.APIConnectionError: Connection error.")
    assert ports_to_probe(p, [22, 1234, 8000, 11434]) == [8000, 1234, 11434]
    f = Facts(port=None, candidates=(Candidate("127.0.0.1", 11434, "openai-compatible"),))
    e = diagnose(p, f)
    assert e.diagnosis[0].id == "refused.no-address"
    assert [m.target for m in e.did_you_mean] == ["127.0.0.1:11434"]
    assert "OpenAI-compatible" in e.did_you_mean[0].why


def test_a_missing_socket_is_offered_the_same_service_s_live_socket() -> None:
    p = parse_input(
        "ERROR 2002 (HY000): Can't connect to local server through socket '/tmp/mysql.sock' (2)"
    )
    f = Facts(
        unix_socket="it does not exist now",
        unix_listening=False,
        unix_listeners=("/run/docker.sock", "/run/mysqld/mysqld.sock", "/x/mysql.sock"),
    )
    e = diagnose(p, f)
    assert e.diagnosis[0].id == "refused.unix-missing"
    assert [m.target for m in e.did_you_mean] == ["/run/mysqld/mysqld.sock", "/x/mysql.sock"]
