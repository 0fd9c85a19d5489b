"""The file store: UID-derived paths that cannot escape, atomic durable writes."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from pacs_ai.archive import storage as storage_module
from pacs_ai.archive.storage import FAN_OUT, INCOMING, ORPHAN_AGE_S, Storage, StorageError

DIGEST = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    "uid",
    ["1.2/../../etc/passwd", "..", "1.2.3\x00", "", "1.2.03", "a.b", "1." + "2" * 70, "/abs/1.2"],
)
def test_invalid_uids_never_reach_the_file_system(storage: Storage, uid: str) -> None:
    with pytest.raises(StorageError):
        storage.relative_path(uid, DIGEST)


def test_path_is_inside_the_root_and_depends_on_content(storage: Storage) -> None:
    first = storage.relative_path("1.2.3.4", DIGEST)
    other = storage.relative_path("1.2.3.4", hashlib.sha256(b"y").hexdigest())
    assert first != other
    assert storage.absolute(first).is_relative_to(storage.root)
    assert first.endswith(f"1.2.3.4.{DIGEST[:16]}.dcm")


@pytest.mark.parametrize(
    "relative", ["../../outside.dcm", "ab/../../outside.dcm", "/etc/passwd", "", ".", "ab/.."]
)
def test_relative_paths_that_leave_the_root_are_refused(storage: Storage, relative: str) -> None:
    with pytest.raises(StorageError):
        storage.absolute(relative)


def test_a_folder_removed_behind_the_store_is_made_again(storage: Storage) -> None:
    relative = storage.relative_path("1.2.3.8", DIGEST)
    storage.write(relative, b"first")
    storage.remove(relative)
    storage.absolute(relative).parent.rmdir()
    assert storage.write(relative, b"again") is True
    assert storage.open(relative).read_bytes() == b"again"


def test_objects_of_the_older_two_level_layout_are_rewritten_in_place(storage: Storage) -> None:
    relative = f"ab/cd/1.2.3.9.{DIGEST[:16]}.dcm"
    assert storage.write(relative, b"old layout") is True
    assert storage.open(relative).read_bytes() == b"old layout"


def test_every_fan_out_folder_exists_before_the_first_write(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "objects")
    folders = {p.name for p in storage.root.iterdir() if p.is_dir()}
    assert folders == {f"{index:03x}" for index in range(FAN_OUT)} | {INCOMING}
    relative = storage.relative_path("1.2.3.10", DIGEST)
    assert relative.split("/")[0] in folders
    (storage.root / "abc").rmdir()
    Storage(storage.root)  # made once: a later start trusts the marker
    assert not (storage.root / "abc").exists()


def test_write_is_complete_and_leaves_no_temporary_files(storage: Storage) -> None:
    relative = storage.relative_path("1.2.3.4", DIGEST)
    assert storage.write(relative, b"x" * 1000) is True
    assert storage.open(relative).read_bytes() == b"x" * 1000
    assert storage.write(relative, b"x" * 1000) is False
    leftovers = [p for p in storage.root.rglob(".tmp-*")]
    assert leftovers == []


def test_a_truncated_file_is_repaired_by_a_rewrite(storage: Storage) -> None:
    relative = storage.relative_path("1.2.3.5", DIGEST)
    storage.write(relative, b"abcdef")
    storage.absolute(relative).write_bytes(b"abc")
    assert storage.write(relative, b"abcdef") is True
    assert storage.open(relative).read_bytes() == b"abcdef"


def test_missing_object_is_reported(storage: Storage) -> None:
    with pytest.raises(StorageError, match="missing"):
        storage.open(storage.relative_path("1.2.3.6", DIGEST))


def test_remove_deletes_and_tolerates_absence(storage: Storage, tmp_path: Path) -> None:
    relative = storage.relative_path("1.2.3.7", DIGEST)
    storage.write(relative, b"data")
    storage.remove(relative)
    assert not storage.exists(relative)
    storage.remove(relative)


def staged_files(storage: Storage) -> list[Path]:
    return list(storage.incoming.iterdir())


def test_a_staged_object_is_placed_whole_and_leaves_nothing_behind(storage: Storage) -> None:
    data = os.urandom(300_000)
    relative = storage.relative_path("1.2.3.20", hashlib.sha256(data).hexdigest())
    staged = storage.stage(data)
    assert staged.place(relative) is True
    staged.discard()  # always called: a no-op once placed
    assert storage.open(relative).read_bytes() == data
    assert staged_files(storage) == []


def test_a_staged_object_already_stored_is_not_placed_again(storage: Storage) -> None:
    relative = storage.relative_path("1.2.3.21", DIGEST)
    storage.write(relative, b"same bytes")
    before = storage.absolute(relative).stat().st_ino
    assert storage.stage(b"same bytes").place(relative) is False
    assert storage.absolute(relative).stat().st_ino == before
    assert staged_files(storage) == []


def test_a_discarded_object_leaves_no_file(storage: Storage) -> None:
    storage.stage(b"refused later").discard()
    assert staged_files(storage) == []
    assert [p for p in storage.root.rglob("*") if p.is_file() and p.name != ".fan-out-ready"] == []


def test_a_second_place_writes_the_plain_way(storage: Storage) -> None:
    """The ingest's second pass (after a UID raced in) may need the file again."""
    relative = storage.relative_path("1.2.3.22", DIGEST)
    staged = storage.stage(b"payload")
    assert staged.place(relative) is True
    storage.absolute(relative).unlink()  # lost behind the store
    assert staged.place(relative) is True
    assert storage.open(relative).read_bytes() == b"payload"


def test_without_staging_place_still_writes(storage: Storage) -> None:
    storage.incoming.rmdir()
    relative = storage.relative_path("1.2.3.23", DIGEST)
    assert storage.stage(b"payload").place(relative) is True
    assert storage.open(relative).read_bytes() == b"payload"


def test_a_failed_staged_write_is_a_storage_error_and_leaves_nothing(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int, _data: bytes) -> None:
        os.close(fd)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage_module, "_write_all", disk_full)
    relative = storage.relative_path("1.2.3.24", DIGEST)
    with pytest.raises(StorageError, match="No space left"):
        storage.stage(b"payload").place(relative)
    assert not storage.exists(relative)
    assert staged_files(storage) == []


def test_old_staged_files_are_removed_at_start_young_ones_kept(storage: Storage) -> None:
    old, young = storage.incoming / ".tmp-old", storage.incoming / ".tmp-young"
    old.write_bytes(b"left by a crash")
    young.write_bytes(b"another process is writing it")
    stale = time.time() - ORPHAN_AGE_S - 60
    os.utime(old, (stale, stale))
    Storage(storage.root)
    assert staged_files(storage) == [young]
