"""The hosts writer on real files: atomic under a reading loop, mode and owner kept, a backup
once, in place on a bind mount, the CLI's sudo line, and names resolved through the file.

Every test owns a temporary hosts file (HOMEPORT_HOSTS_FILE); the machine's /etc/hosts is
only ever covered by a bind mount inside a private mount namespace that a test creates
(``unshare -m``), which ends with the test's child process.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeport.hosts.block import apply_block, entry, remove_block
from homeport.hosts.write import BACKUP_SUFFIX, update

ORIGINAL = "127.0.0.1 localhost\n127.0.1.1 box\n# keep me\n::1 localhost ip6-localhost\n"


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "etc" / "hosts"
    path.parent.mkdir()
    path.write_text(ORIGINAL)
    path.chmod(0o644)
    monkeypatch.setenv("HOMEPORT_HOSTS_FILE", str(path))
    return path


READER = textwrap.dedent("""
    import sys
    path, stop, good = sys.argv[1], sys.argv[2], set(sys.argv[3:])
    reads = bad = 0
    import os
    while not os.path.exists(stop):
        with open(path, "rb") as f:
            data = f.read().decode()
        reads += 1
        if data not in good:
            bad += 1
    print(reads, bad, flush=True)
""")


def test_a_reader_in_a_loop_never_sees_a_half_written_file(hosts: Path, tmp_path: Path) -> None:
    many = [entry(f"svc{i}.localhost", f"127.0.{2 + i // 200}.{1 + i % 200}") for i in range(400)]
    state_a, state_b = apply_block(ORIGINAL, many), apply_block(ORIGINAL, many[:7])
    hosts.write_text(state_a)
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(hosts), str(stop), state_a, state_b],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for i in range(150):
            wanted = many[:7] if i % 2 == 0 else many
            result = update(hosts, lambda text, w=wanted: apply_block(text, w))  # type: ignore[misc]
            assert result.method == "rename"
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=30)
    reads, bad = map(int, out.split())
    assert reads > 0
    assert bad == 0, f"{bad} of {reads} reads saw a file that was neither state"


def test_mode_owner_kept_and_one_backup(hosts: Path) -> None:
    hosts.chmod(0o640)
    os.chown(hosts, 0, 65534) if os.geteuid() == 0 else None
    before = hosts.stat()
    first = update(hosts, lambda t: apply_block(t, [entry("a.localhost", "127.0.3.3")]))
    assert first.backup == hosts.with_name("hosts" + BACKUP_SUFFIX)
    assert first.backup.read_text() == ORIGINAL
    after = hosts.stat()
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # replaced by rename, not rewritten
    second = update(hosts, lambda t: apply_block(t, [entry("b.localhost", "127.0.3.4")]))
    assert second.backup is None  # the first copy stays the original
    assert first.backup.read_text() == ORIGINAL
    again = update(hosts, lambda t: apply_block(t, [entry("b.localhost", "127.0.3.4")]))
    assert again.method == "unchanged"
    assert update(hosts, remove_block).new == ORIGINAL
    assert hosts.read_text() == ORIGINAL
    assert not [p for p in hosts.parent.iterdir() if ".homeport." in p.name and "bak" not in p.name]


def cli(*argv: str, env: dict[str, str] | None = None, user: str | None = None) -> Any:
    cmd = [sys.executable, "-m", "homeport", *argv]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_cli_sync_dry_run_clean_and_the_sudo_line(
    hosts: Path, state_dir: Path, tmp_path: Path
) -> None:
    from homeport.ports.address import pick_address

    lease = pick_address("db.shop.localhost", port=5432, ttl=600, bound=False)
    env = dict(os.environ)
    dry = cli("hosts", "sync", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"+{lease.address}  db.shop.localhost" in dry.stdout
    assert hosts.read_text() == ORIGINAL
    done = cli("hosts", "sync", "--json", env=env)
    assert done.returncode == 0, done.stderr
    j = json.loads(done.stdout)
    assert j["method"] == "rename"
    assert j["entries"] == [{"name": "db.shop.localhost", "address": lease.address}]
    assert f"{lease.address}  db.shop.localhost\n" in hosts.read_text()
    again = cli("hosts", "sync", "--json", env=env)
    assert json.loads(again.stdout)["method"] == "unchanged"
    assert cli("hosts", "clean", env=env).returncode == 0
    assert hosts.read_text() == ORIGINAL
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return  # the unprivileged half needs root to drop to nobody
    shared = Path(tempfile.mkdtemp(prefix="homeport-hosts-"))  # nobody can read it
    try:
        shared.chmod(0o755)
        theirs = shared / "hosts"
        theirs.write_text(ORIGINAL)
        theirs.chmod(0o644)
        state = shared / "state"
        state.mkdir(mode=0o777)
        denied = cli(
            "hosts", "sync",
            env={**env, "HOMEPORT_HOSTS_FILE": str(theirs), "HOMEPORT_STATE_DIR": str(state),
                 "HOME": str(shared)},
            user="65534",
        )  # fmt: skip
        assert denied.returncode == 3, denied.stderr
        assert "  sudo homeport hosts sync\n" in denied.stderr
        assert "Traceback" not in denied.stderr
        assert theirs.read_text() == ORIGINAL
    finally:
        shutil.rmtree(shared)


def in_namespace(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``sh -c script`` in a private mount namespace (root only)."""
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def namespaces() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("a private mount namespace (unshare -m) needs root")
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed")
    probe = in_namespace("true")
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is refused here: {probe.stderr.strip()}")
    return


def test_a_bind_mounted_hosts_file_is_written_in_place(hosts: Path, namespaces: None) -> None:
    mounted = hosts.with_name("mounted")
    mounted.write_text(ORIGINAL)
    script = textwrap.dedent(f"""
        mount --bind {hosts} {mounted} || exit 90
        {sys.executable} -c '
import json, sys
from pathlib import Path
from homeport.hosts.block import apply_block, entry
from homeport.hosts.write import update
r = update(Path(sys.argv[1]), lambda t: apply_block(t, [entry("x.localhost", "127.0.3.9")]))
print(json.dumps(r.to_json()))
' {mounted}
    """)
    done = in_namespace(script)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["method"] == "in-place"
    assert "127.0.3.9  x.localhost" in hosts.read_text()  # the bind source took the write


def test_names_resolve_through_the_synced_file(
    hosts: Path, state_dir: Path, namespaces: None, free_port_factory: Any
) -> None:
    """Two real Redis servers on one port, each on its own leased address; after sync,
    ``redis-cli -h NAME`` reaches each by its name through a resolver reading the file."""
    redis = shutil.which("redis-server")
    if redis is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server / redis-cli are not installed")
    from homeport.ports import wait_for
    from homeport.ports.address import pick_address

    port = free_port_factory()
    servers, names = [], {}
    try:
        for name in ("red-a.localhost", "red-b.localhost"):
            lease = pick_address(name, port=port)
            assert lease.address is not None
            names[name] = lease.address
            servers.append(
                subprocess.Popen(
                    [
                        redis,
                        "--port",
                        str(port),
                        "--bind",
                        lease.address,
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
        for name, addr in names.items():
            wait_for(f"{addr}:{port}", timeout=15)
            set_ = ["redis-cli", "-h", addr, "-p", str(port), "set", "who", name]
            assert subprocess.run(set_, capture_output=True, text=True).stdout.strip() == "OK"
        assert cli("hosts", "sync").returncode == 0
        script = f"""
            mount --bind {hosts} /etc/hosts || exit 90
            for n in red-a.localhost red-b.localhost; do
              getent -s files hosts $n | head -1
              redis-cli -h $n -p {port} get who
            done
        """
        done = in_namespace(script)
        assert done.returncode == 0, done.stderr
        out = done.stdout.split()
        assert out == [names["red-a.localhost"], "red-a.localhost", "red-a.localhost",
                       names["red-b.localhost"], "red-b.localhost", "red-b.localhost"]  # fmt: skip
    finally:
        for s in servers:
            s.terminate()
            s.wait(10)
