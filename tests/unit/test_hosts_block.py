"""The managed hosts block (pure): render, replace, remove, diff, NSS order, mount points."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeport.hosts.block import (
    BEGIN,
    END,
    apply_block,
    block_entries,
    diff,
    entry,
    is_current,
    nss_files_first,
    remove_block,
    split,
)
from homeport.hosts.names import wanted_entries
from homeport.hosts.write import is_mount_point

DEBIAN = (
    "127.0.0.1\tlocalhost\n127.0.1.1\tbox.example\tbox\n\n# IPv6\n::1 localhost ip6-localhost\n"
)
A = [entry("db.shop.localhost", "127.0.7.7"), entry("api.localhost", "127.0.0.1")]


def test_sync_writes_one_sorted_line_per_name_between_the_markers() -> None:
    text = apply_block(DEBIAN, A)
    assert text.startswith(DEBIAN)
    assert text[len(DEBIAN) :] == (
        f"{BEGIN}\n127.0.0.1  api.localhost\n127.0.7.7  db.shop.localhost\n{END}\n"
    )
    assert block_entries(text) == sorted(A)
    assert is_current(text, A)
    assert not is_current(DEBIAN, A)


def test_sync_is_idempotent_and_replaces_only_the_block() -> None:
    once = apply_block(DEBIAN + "10.0.0.5 nas\n", A)
    assert apply_block(once, A) == once
    edited = once + "192.168.1.9 printer\n"  # a line added after the block by hand
    changed = apply_block(edited, A[:1])
    assert changed.endswith("192.168.1.9 printer\n")
    assert "api.localhost" not in changed
    assert changed.startswith(DEBIAN + "10.0.0.5 nas\n")


lines = st.lists(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n")
    ).filter(lambda x: not x.startswith("# BEGIN homeport") and x != END),
    max_size=8,
)


@given(before=lines, crlf=st.booleans(), final_newline=st.booleans())
def test_clean_gives_back_exactly_the_original(
    before: list[str], crlf: bool, final_newline: bool
) -> None:
    nl = "\r\n" if crlf else "\n"
    original = nl.join(before) + (nl if final_newline and before else "")
    synced = apply_block(original, A)
    assert split(synced).before.startswith(
        original.rstrip("\r\n") if not final_newline else original
    )
    assert remove_block(synced) == original
    assert remove_block(apply_block(synced, A[:1])) == original


def test_a_begin_marker_without_end_is_left_alone() -> None:
    broken = DEBIAN + BEGIN + "\n127.0.7.7 x.localhost\n"
    assert split(broken).block is None
    assert remove_block(broken) == broken
    assert apply_block(broken, A).startswith(broken)


def test_diff_shows_the_added_lines() -> None:
    d = diff(DEBIAN, apply_block(DEBIAN, A), "/etc/hosts")
    assert "+127.0.7.7  db.shop.localhost" in d
    assert diff(DEBIAN, DEBIAN, "/etc/hosts") == ""


@pytest.mark.parametrize(
    ("nsswitch", "ok"),
    [
        ("hosts: files dns\n", True),
        ("hosts:  files myhostname [NOTFOUND=return] dns\n", True),
        ("# hosts: myhostname files\nhosts: files mdns4_minimal dns myhostname\n", True),
        ("hosts: myhostname files dns\n", False),
        ("hosts: resolve [!UNAVAIL=return] dns\n", False),
        ("passwd: files\n", True),
    ],
)
def test_nss_must_read_files_before_myhostname(nsswitch: str, ok: bool) -> None:
    assert nss_files_first(nsswitch)[0] is ok


def test_names_map_to_their_leased_address_else_the_gateway() -> None:
    routes = [
        ("api.localhost", "http://127.0.0.1:3000"),
        ("web.localhost", "http://127.0.4.4:8000"),  # an own-address service
        ("db.localhost", "tcp://127.0.0.1:5432"),
        ("sock.localhost", "unix:/run/app.sock"),
    ]
    got = wanted_entries(routes, {"127.0.5.5": "db.localhost", "127.0.6.6": "cache"})
    assert [e.line() for e in got] == [
        "127.0.0.1  api.localhost",
        "127.0.6.6  cache.localhost",
        "127.0.5.5  db.localhost",
        "127.0.0.1  sock.localhost",
        "127.0.4.4  web.localhost",
    ]


def test_a_bind_mounted_file_is_seen_in_mountinfo(tmp_path: Path) -> None:
    target = tmp_path / "hosts"
    target.write_text("")
    mountinfo = (
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        f"600 22 8:1 /var/lib/docker/containers/x/hosts {target} rw - ext4 /dev/sda1 rw\n"
    )
    assert is_mount_point(target, mountinfo)
    assert not is_mount_point(tmp_path / "other", mountinfo)
