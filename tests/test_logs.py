"""Reading job output: whole, the last lines (read backwards), from an offset; bad UTF-8 replaced."""

import os

import pytest

from nodejobs.store import files as logs

BIG = 200 * 1024 * 1024


def bytes_read() -> int:
    """Bytes this process has read through read() calls so far (``rchar`` of /proc/self/io)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def big_sparse_file(path, tail: bytes, size: int = BIG) -> str:
    """A file of ``size`` bytes (a hole, written instantly) followed by ``tail``."""
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(size)
        f.write(tail)
    return str(path)


def test_read_text_of_missing_file_is_empty(tmp_path):
    assert logs.read_text(str(tmp_path / "nope")) == ""


def test_non_utf8_bytes_become_replacement_characters(tmp_path):
    path = tmp_path / "out"
    path.write_bytes(b"ok \xff\xfe end\n")
    assert logs.read_text(str(path)) == "ok \ufffd\ufffd end\n"
    assert logs.tail_lines(str(path), 1) == "ok \ufffd\ufffd end\n"
    assert logs.read_from(str(path), 0)[0] == "ok \ufffd\ufffd end\n"


def test_tail_lines_returns_the_last_lines(tmp_path):
    path = tmp_path / "out"
    path.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert logs.tail_lines(str(path), 3) == "line 997\nline 998\nline 999\n"
    assert logs.tail_lines(str(path), 1) == "line 999\n"
    assert logs.tail_lines(str(path), 0) == ""
    assert logs.tail_lines(str(path), 5000).count("\n") == 1000


def test_tail_lines_without_final_newline_and_missing_file(tmp_path):
    path = tmp_path / "out"
    path.write_text("a\nb\nc")
    assert logs.tail_lines(str(path), 2) == "b\nc"
    assert logs.tail_lines(str(tmp_path / "missing"), 5) == ""
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert logs.tail_lines(str(empty), 5) == ""


def test_tail_lines_across_read_blocks(tmp_path):
    path = tmp_path / "out"
    long_line = "x" * 100_000
    path.write_text(f"first\n{long_line}\nlast\n")
    assert logs.tail_lines(str(path), 2) == f"{long_line}\nlast\n"


def test_tail_of_200mb_file_reads_only_its_end(tmp_path):
    path = big_sparse_file(tmp_path / "big_out.txt", b"".join(b"row %d\n" % i for i in range(20)))
    assert os.path.getsize(path) > BIG
    before = bytes_read()
    text = logs.tail_lines(path, 5)
    read = bytes_read() - before
    assert text == "row 15\nrow 16\nrow 17\nrow 18\nrow 19\n"
    assert read < 1024 * 1024, f"read {read} bytes to tail 5 lines"


def test_tail_of_200mb_file_without_newlines_is_bounded(tmp_path):
    path = big_sparse_file(tmp_path / "big_out.txt", b"no newline at all")
    before = bytes_read()
    text = logs.tail_lines(path, 5, max_bytes=4 * 1024 * 1024)
    read = bytes_read() - before
    assert text.endswith("no newline at all")
    assert read <= 5 * 1024 * 1024, f"read {read} bytes"


def test_read_from_returns_new_text_and_the_next_offset(tmp_path):
    path = tmp_path / "out"
    path.write_bytes(b"hello ")
    text, offset = logs.read_from(str(path), 0)
    assert (text, offset) == ("hello ", 6)
    assert logs.read_from(str(path), offset) == ("", 6)
    with open(path, "ab") as f:
        f.write(b"world\n")
    assert logs.read_from(str(path), offset) == ("world\n", 12)


def test_read_from_missing_file_keeps_the_offset(tmp_path):
    assert logs.read_from(str(tmp_path / "nope"), 7) == ("", 7)


def test_read_from_never_splits_a_character(tmp_path):
    path = tmp_path / "out"
    snowman = "☃".encode()  # three bytes
    path.write_bytes(b"a" + snowman[:2])
    text, offset = logs.read_from(str(path), 0)
    assert (text, offset) == ("a", 1)
    with open(path, "ab") as f:
        f.write(snowman[2:])
    assert logs.read_from(str(path), offset) == ("☃", 4)


def test_read_from_final_flushes_an_unfinished_sequence(tmp_path):
    path = tmp_path / "out"
    path.write_bytes(b"abc\xff")
    assert logs.read_from(str(path), 0) == ("abc", 3)
    assert logs.read_from(str(path), 3, final=True) == ("\ufffd", 4)


def test_read_from_restarts_when_the_file_was_replaced(tmp_path):
    path = tmp_path / "out"
    path.write_bytes(b"a long first run\n")
    _, offset = logs.read_from(str(path), 0)
    path.write_bytes(b"rerun\n")
    assert logs.read_from(str(path), offset) == ("rerun\n", 6)


def test_read_from_respects_the_limit(tmp_path):
    path = tmp_path / "out"
    path.write_bytes(b"0123456789")
    assert logs.read_from(str(path), 2, limit=3) == ("234", 5)


def test_remove_if_exists(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    logs.remove_if_exists(str(path))
    logs.remove_if_exists(str(path))
    assert not path.exists()


def test_write_private_replaces_a_file_whole_readable_by_its_owner_only(tmp_path):
    path = str(tmp_path / "state")
    logs.write_private(path, "old")
    logs.write_private(path, b"new ", "text", sync=True)
    with open(path) as f:
        assert f.read() == "new text"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["state"]


def test_write_private_leaves_the_old_file_and_no_temporary_when_it_fails(tmp_path):
    path = str(tmp_path / "state")
    logs.write_private(path, "old")
    with pytest.raises(TypeError):
        logs.write_private(path, "half", None)  # not bytes: the write fails half way
    with open(path) as f:
        assert f.read() == "old"
    assert os.listdir(tmp_path) == ["state"]
