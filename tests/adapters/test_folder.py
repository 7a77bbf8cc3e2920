"""The folder adapter: the contract suite with a temporary directory as the "platform",
plus what is particular to files (front matter, atomic writes, file names)."""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from herald.adapters.base import AuthError, PermanentError, Receipt
from herald.adapters.folder import FolderAdapter
from herald.core.clock import set_clock
from tests.adapters.contract import AdapterContract, new_key, sample_post


@dataclass
class Site:
    directory: Path  # where the site reads posts from
    scratch: Path  # beside it, for files that are not directories

    def entries(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir())


def read_only_directory(tmp_path: Path) -> Path | None:
    """A directory this process cannot write, or None where none can be had."""
    if os.geteuid() != 0:
        directory = tmp_path / "read-only"
        directory.mkdir()
        directory.chmod(0o555)
        return directory
    # root writes anywhere, except on a read-only filesystem (in a container, /proc/sys).
    for candidate in (Path("/proc/sys"), Path("/sys")):
        if candidate.is_dir() and not os.access(candidate, os.W_OK):
            return candidate
    return None


def make_site(tmp_path: Path) -> Site:
    directory = tmp_path / "site" / "content" / "posts"
    directory.mkdir(parents=True)
    return Site(directory, tmp_path)


class TestFolderContract(AdapterContract):
    platform = "folder"
    capabilities = frozenset()  # no HTTP: the HTTP failure cases are skipped

    @pytest.fixture
    def fake(self, tmp_path: Path) -> Site:
        return make_site(tmp_path)

    def credentials(self, fake: Site) -> dict[str, Any]:
        return {"path": str(fake.directory)}

    def bad_credentials(self, fake: Site) -> dict[str, dict[str, Any]]:
        a_file = fake.scratch / "not-a-directory.md"
        a_file.write_text("hello")
        cases = {
            "a file": {"path": str(a_file)},
            "missing": {"path": str(fake.scratch / "no" / "such" / "dir")},
        }
        read_only = read_only_directory(fake.scratch)
        if read_only is not None:
            cases["read-only"] = {"path": str(read_only)}
        return cases

    def posts_on_platform(self, fake: Site) -> list[Any]:
        return fake.entries()  # every file counts, hidden ones included

    def secret_values(self, credentials: Any) -> list[str]:
        # The path is where to write, not a secret, and "cannot write <path>" is what the
        # person fixing the channel needs to read.
        return []


# -- what is particular to folders ------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


def folder_adapter(directory: Path, **settings: Any) -> FolderAdapter:
    return FolderAdapter.build({"path": str(directory)}, settings)


@pytest.fixture
def adapter(site: Site) -> FolderAdapter:
    return folder_adapter(site.directory)


@pytest.fixture
def frozen_now() -> Iterator[datetime]:
    now = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)
    set_clock(lambda: now)
    try:
        yield now
    finally:
        set_clock(None)


def split_front_matter(text: str) -> tuple[Any, str]:
    """As Hugo and Jekyll read it: a ``---`` line, YAML, a ``---`` line, the body."""
    assert text.startswith("---\n")
    front, fence, body = text[len("---\n") :].partition("\n---\n")
    assert fence, "no closing --- fence"
    return yaml.safe_load(front), body


@pytest.mark.parametrize(
    "title",
    [
        "Café au lait — ünïcödé 日本語 🎉",
        "null",
        "yes",
        "2024-01-01",
        "a: b",
        "# not a comment",
        "---",
        "line one\n---\nline two",
        "\"double\" and 'single' quotes",
        " leading and trailing spaces ",
        "long " * 60,
    ],
)
def test_front_matter_round_trips(adapter: FolderAdapter, site: Site, title: str) -> None:
    post = sample_post(title=title, tags=("c++", "node.js", "日本", "true", "#tag"))
    receipt = adapter.publish(adapter.render(post), new_key())
    front, body = split_front_matter((site.directory / receipt.external_id).read_text("utf-8"))
    assert front["title"] == title
    assert front["tags"] == list(post.tags)
    assert front["canonical_url"] == post.canonical_url
    assert front["description"] == post.excerpt
    assert body == "\n" + post.body


def test_front_matter_leaves_out_what_the_post_lacks(adapter: FolderAdapter) -> None:
    post = sample_post(excerpt=None, tags=(), canonical_url=None, body="Body\n\n\n")
    front, body = split_front_matter(adapter.render(post).parts[0])
    assert set(front) == {"title", "date"}
    assert body == "\nBody\n"


def test_front_matter_date_is_now_in_utc(adapter: FolderAdapter, frozen_now: datetime) -> None:
    front, _ = split_front_matter(adapter.render(sample_post()).parts[0])
    assert datetime.fromisoformat(str(front["date"])) == frozen_now


def test_file_is_named_by_slug_and_key(site: Site) -> None:
    key = "herald-0123456789abcdef0123456789abcdef"
    receipt = folder_adapter(site.directory, extension=".markdown").publish(
        folder_adapter(site.directory).render(sample_post(title="Café au lait — 日本語!")), key
    )
    assert receipt.external_id == "cafe-au-lait-456789abcdef.markdown"
    assert site.entries() == [receipt.external_id]
    assert receipt.url == (site.directory / receipt.external_id).as_uri()


def test_title_without_latin_letters_still_names_a_file(adapter: FolderAdapter, site: Site) -> None:
    receipt = adapter.publish(adapter.render(sample_post(title="日本語 🎉")), new_key())
    assert receipt.external_id.startswith("post-")
    assert site.entries() == [receipt.external_id]


def test_file_holds_exactly_the_rendition(adapter: FolderAdapter, site: Site) -> None:
    rendition = adapter.render(sample_post())
    receipt = adapter.publish(rendition, new_key())
    assert (site.directory / receipt.external_id).read_text("utf-8") == rendition.parts[0]


def test_same_key_twice_writes_one_file_and_keeps_the_first(
    adapter: FolderAdapter, site: Site
) -> None:
    key = new_key()
    first = adapter.publish(adapter.render(sample_post(body="first")), key)
    again = adapter.publish(adapter.render(sample_post(body="second")), key)
    assert again == first
    assert site.entries() == [first.external_id]
    assert "first" in (site.directory / first.external_id).read_text("utf-8")


def test_racing_runs_of_one_delivery_write_one_file(adapter: FolderAdapter, site: Site) -> None:
    rendition = adapter.render(sample_post())
    key = new_key()
    barrier = threading.Barrier(8)
    receipts: list[Receipt] = []

    def run() -> None:
        barrier.wait()
        receipts.append(adapter.publish(rendition, key))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(receipts) == 8
    assert all(receipt == receipts[0] for receipt in receipts)
    assert site.entries() == [receipts[0].external_id]


def test_write_is_atomic(
    adapter: FolderAdapter, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the content is being written, only a hidden temporary file exists."""
    seen_while_writing: list[list[str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen_while_writing.append(site.entries())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)  # the module the adapter calls
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    monkeypatch.undo()
    assert len(seen_while_writing) == 1
    (during,) = seen_while_writing
    assert len(during) == 1
    assert during[0].startswith(".")
    assert receipt.external_id not in during
    assert site.entries() == [receipt.external_id], "a temporary file was left behind"


def test_failed_write_leaves_nothing_behind(
    adapter: FolderAdapter, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)  # the module the adapter calls
    with pytest.raises(PermanentError, match="No space left"):
        adapter.publish(adapter.render(sample_post()), new_key())
    monkeypatch.undo()
    assert site.entries() == []


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_file_is_readable_like_any_file_herald_creates(adapter: FolderAdapter, site: Site) -> None:
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    mode = stat.S_IMODE((site.directory / receipt.external_id).stat().st_mode)
    assert oct(mode) == oct(0o666 & ~current_umask())


def test_read_only_directory_is_an_auth_error(tmp_path: Path) -> None:
    directory = read_only_directory(tmp_path)
    if directory is None:
        pytest.skip("running as root with no read-only filesystem to point at")
    adapter = folder_adapter(directory)
    with pytest.raises(AuthError, match="not writable"):
        adapter.verify()
    with pytest.raises(AuthError, match="not writable"):
        adapter.publish(adapter.render(sample_post()), new_key())


@pytest.mark.parametrize("where", ["a file", "missing"])
def test_not_a_directory_is_an_auth_error(tmp_path: Path, where: str) -> None:
    path = tmp_path / "post.md"
    if where == "a file":
        path.write_text("hello")
    adapter = folder_adapter(path)
    with pytest.raises(AuthError, match="not a directory"):
        adapter.verify()
    with pytest.raises(AuthError, match="not a directory"):
        adapter.publish(adapter.render(sample_post()), new_key())
    assert sorted(p.name for p in tmp_path.iterdir()) == (["post.md"] if where == "a file" else [])
