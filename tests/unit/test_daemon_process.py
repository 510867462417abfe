"""The daemon's files: token (0600, kept, re-tightened), lock (one holder, message), daemon.json."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import pytest

from homeport.daemon.config import DaemonConfig
from homeport.daemon.process import (
    AlreadyRunning,
    _auth_pipe,
    acquire_lock,
    daemon_argv,
    ensure_token,
    read_auth_fd,
    read_info,
)


def test_token_is_created_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "token"
    first = ensure_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert ensure_token(path) == first
    os.chmod(path, 0o644)  # someone loosened it
    assert ensure_token(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_second_lock_holder_is_told_where_the_first_is(tmp_path: Path) -> None:
    config = DaemonConfig(state_dir=tmp_path, port=5555)
    config.info_path.write_text(json.dumps({"pid": 4242, "url": "http://homeport.localhost:5555"}))
    fd = acquire_lock(config)
    try:
        with pytest.raises(AlreadyRunning, match=r"at http://homeport.localhost:5555 \(pid 4242\)"):
            acquire_lock(config)
    finally:
        os.close(fd)
    os.close(acquire_lock(config))  # free again once the holder closed it


def test_read_info_tolerates_garbage(tmp_path: Path) -> None:
    config = DaemonConfig(state_dir=tmp_path)
    assert read_info(config) is None
    config.info_path.write_text("{half")
    assert read_info(config) is None
    config.info_path.write_text("[1, 2]")
    assert read_info(config) is None


def test_auth_goes_through_a_pipe_not_the_command_line(tmp_path: Path) -> None:
    config = DaemonConfig(state_dir=tmp_path, auth="basic:ann:hunter2")
    fd = _auth_pipe(config.auth)
    assert fd is not None
    argv = daemon_argv(config, ready_fd=7, auth_fd=fd)
    assert not any("hunter2" in a for a in argv)
    assert argv[argv.index("--auth-fd") + 1] == str(fd)
    assert read_auth_fd(fd) == "basic:ann:hunter2"
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)  # read once and closed: the daemon keeps no descriptor on it


def test_no_auth_no_pipe(tmp_path: Path) -> None:
    config = DaemonConfig(state_dir=tmp_path)
    assert _auth_pipe(config.auth) is None
    assert "--auth-fd" not in daemon_argv(config, ready_fd=7)


def test_https_only_reaches_the_background_daemon(tmp_path: Path) -> None:
    from homeport.cli import up

    parser = argparse.ArgumentParser()
    up.add_arguments(parser)
    args = parser.parse_args(["-d", "--https-only"])
    config = DaemonConfig.build(https_only=args.https_only, directory=tmp_path)
    assert "--https-only" in daemon_argv(config, ready_fd=7)
    assert "--https-only" not in daemon_argv(DaemonConfig(state_dir=tmp_path), ready_fd=7)
