"""inotify on a real folder: a write to a file in it makes the descriptor readable."""

from __future__ import annotations

import select
from pathlib import Path

import pytest

from homeport.services.dirwatch import open_watch


def test_a_write_in_a_watched_folder_wakes_the_reader(tmp_path: Path) -> None:
    watch = open_watch()
    if watch is None:
        pytest.skip("no inotify on this system (the tailer polls instead)")
    try:
        assert watch.add(tmp_path)
        assert select.select([watch.fd], [], [], 0)[0] == []
        with (tmp_path / "api.log").open("a") as f:
            f.write("a line\n")
        assert select.select([watch.fd], [], [], 5)[0] == [watch.fd]
        watch.drain()
        assert select.select([watch.fd], [], [], 0)[0] == []
        assert not watch.add(tmp_path / "missing")
    finally:
        watch.close()
