"""verify's comparison: what counts as the same content, on real tar streams made here."""

from __future__ import annotations

import io
import tarfile

from imagekit.stages.verify import Entry, compare, file_tree, stamped


def tar_of(files: dict[str, tuple[bytes, int, float]], links: dict[str, str] | None = None) -> io.BytesIO:
    """A tar stream like `docker export`: './'-prefixed names, each file with (data, mode, mtime)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, (data, mode, mtime) in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode, info.mtime = len(data), mode, mtime
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(f"./{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    buffer.seek(0)
    return buffer


def test_times_are_ignored_and_content_mode_and_links_are_not():
    a = file_tree(tar_of({"opt/venv/x.py": (b"print(1)\n", 0o644, 1.0), ".dockerenv": (b"", 0o755, 1.0)}, {"usr/bin/py": "python3.11"}))
    b = file_tree(tar_of({"opt/venv/x.py": (b"print(1)\n", 0o644, 9e8), ".dockerenv": (b"", 0o755, 5.0)}, {"usr/bin/py": "python3.11"}))
    assert set(a) == {"opt/venv/x.py", ".dockerenv", "usr/bin/py"}, "names keep their leading dots"
    assert compare(a, b) == ([], [])

    c = file_tree(tar_of({"opt/venv/x.py": (b"print(2)\n", 0o755, 1.0), "new": (b"", 0o644, 1.0)}, {"usr/bin/py": "python3.12"}))
    differences, _ = compare(a, c)
    assert [(d.path, d.what) for d in differences] == [
        (".dockerenv", "only in the original"),
        ("new", "only in the rebuild"),
        ("opt/venv/x.py", "changed: mode, content"),
        ("usr/bin/py", "changed: content"),
    ]


def test_stamped_files_are_allowed_and_reported_each_with_a_reason():
    a = {"var/log/dpkg.log": Entry("file", 0o644, (0, 0), 10, "a"), "etc/shadow": Entry("file", 0o640, (0, 42), 9, "a")}
    b = {"var/log/dpkg.log": Entry("file", 0o644, (0, 0), 12, "b"), "etc/shadow": Entry("file", 0o640, (0, 42), 9, "b")}
    assert compare(a, b) == ([], ["etc/shadow", "var/log/dpkg.log"])
    assert stamped("var/log/apt/term.log") and stamped("etc/shadow-") and not stamped("etc/passwd")
    assert not stamped("opt/venv/lib/python3.11/site-packages/torch/version.py")
