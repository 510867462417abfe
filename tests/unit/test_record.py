"""homeport._record: frozen, slotted records without dataclasses, and the start-up paths
that depend on them staying free of ``dataclasses`` and ``typing``."""

from __future__ import annotations

import copy
import json
import pickle
import socket
import subprocess
import sys

import pytest

from homeport._record import FrozenRecordError, record, replace
from homeport.model import Listener, Process, Socket


@record
class Point:
    """A docstring that stays."""

    x: int
    y: int = 0
    tags: tuple[str, ...] = ()

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


@record
class Single:
    only: str


def test_fields_take_positions_names_and_defaults() -> None:
    p = Point(3, tags=("a",))
    assert (p.x, p.y, p.tags) == (3, 0, ("a",))
    assert p.norm1 == 3
    assert Point.__doc__ == "A docstring that stays."
    assert Point.__match_args__ == ("x", "y", "tags")
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=2)  # type: ignore[call-arg]


def test_records_are_frozen_and_slotted() -> None:
    p = Point(1, 2)
    with pytest.raises(FrozenRecordError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.other = 1  # type: ignore[attr-defined]
    assert not hasattr(p, "__dict__")
    assert (p.x, p.y) == (1, 2)


def test_equality_and_hash_follow_the_values_and_the_class() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(2, 1)
    assert Point(1) != (1, 0, ())
    assert hash(Point(1, 2, ("t",))) == hash(Point(1, 2, ("t",)))
    assert len({Point(1), Point(1), Point(2)}) == 2
    assert Single("a") == Single("a")
    assert Single("a") != Single("b")
    assert len({Single("a"), Single("a")}) == 1


def test_repr_pickle_copy_and_replace() -> None:
    p = Point(1, 2, ("t",))
    assert repr(p) == "Point(x=1, y=2, tags=('t',))"
    assert repr(Single("s")) == "Single(only='s')"
    assert pickle.loads(pickle.dumps(p)) == p
    assert copy.copy(p) == p
    assert copy.deepcopy(p) == p
    moved = replace(p, y=7)
    assert moved == Point(1, 7, ("t",))
    assert p.y == 2
    with pytest.raises(TypeError, match="no field 'z'"):
        replace(p, z=1)


def test_model_records_behave_as_their_dataclasses_did() -> None:
    s = Socket("tcp", 4, "127.0.0.1", 8000, "0.0.0.0", 0, "LISTEN", 42)
    owner = Process(7, "srv", ("srv", "--port", "8000"))
    x = Listener(s, "loopback", (owner,))
    assert s.listening
    assert x.port == 8000
    assert x.pids == (7,)
    assert replace(x, route="api").route == "api"
    assert replace(x, route="api").socket is s
    assert x.to_json()["owners"][0]["cmdline"] == ["srv", "--port", "8000"]
    assert pickle.loads(pickle.dumps(x)) == x


@pytest.mark.parametrize("command", ["who", "ls"])
def test_the_quick_commands_import_neither_dataclasses_nor_typing(command: str) -> None:
    # ~8 ms for dataclasses (with inspect) and ~2 ms for typing of every run: the reason
    # _record exists. A real listener, so the owner walk and the records all run.
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        argv = ["who", str(port), "--json"] if command == "who" else ["ls", "--json"]
        probe = (
            "import sys\n"
            "from homeport.cli import main\n"
            f"status = main({argv!r})\n"
            "heavy = [m for m in ('dataclasses', 'typing', 'inspect') if m in sys.modules]\n"
            "print('HEAVY', *heavy, sep=' ')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    listing, _, heavy = out.rpartition("HEAVY")
    assert heavy.split() == []
    found = json.loads(listing)
    ports = [x["port"] for x in found["listeners"]]
    assert port in ports
