"""The folder adapter: the contract suite with a temporary directory as the "platform",
plus what is particular to files (front matter, atomic writes, file names, and writing
only under the configured roots)."""

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
from pydantic import ValidationError

from herald.adapters.base import AdapterError, AuthError, PermanentError, Receipt
from herald.adapters.folder import OUTSIDE_ROOTS, FolderAdapter
from herald.core.clock import set_clock
from herald.core.settings import Settings, get_settings
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


def test_read_only_directory_is_an_auth_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = read_only_directory(tmp_path)
    if directory is None:
        pytest.skip("running as root with no read-only filesystem to point at")
    monkeypatch.setattr(get_settings(), "folder_roots", [directory.parent])
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


# -- only under the configured roots (HERALD_FOLDER_ROOTS) ------------------------------


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The one root folder channels may write under; beside it, things they may not."""
    root = tmp_path / "sites"
    (root / "blog").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    monkeypatch.setattr(get_settings(), "folder_roots", [root])
    return root


def refused_everywhere(adapter: FolderAdapter) -> None:
    """verify, find_existing and publish all refuse, with the one message."""
    rendition = adapter.render(sample_post())
    for call in (
        adapter.verify,
        lambda: adapter.find_existing(rendition, new_key()),
        lambda: adapter.publish(rendition, new_key()),
    ):
        with pytest.raises(AuthError) as refused:
            call()
        assert refused.value.message == OUTSIDE_ROOTS


def all_files(top: Path) -> list[str]:
    """Every regular file under ``top`` (symlinks not followed, not counted)."""
    return sorted(
        str(p.relative_to(top)) for p in top.rglob("*") if p.is_file() and not p.is_symlink()
    )


def test_the_reported_relative_path_is_refused_and_nothing_is_written(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bug: a channel at ``../../tmp/x`` wrote its file relative to the worker's
    directory, then ``Path.as_uri()`` raised ValueError (a relative path) in publish and
    find_existing, and the delivery looped. A relative path is now taken from the root,
    so this one leads outside it: refused, as an adapter error, before anything is
    written."""
    worker_cwd = tmp_path / "a" / "b"
    worker_cwd.mkdir(parents=True)
    monkeypatch.chdir(worker_cwd)
    target = tmp_path / "outside"
    adapter = folder_adapter(Path("../../outside"))
    assert (worker_cwd / "../../outside").resolve() == target  # where it used to write
    with pytest.raises(AuthError, match="configured roots"):  # was: ValueError, after writing
        adapter.publish(adapter.render(sample_post()), new_key())
    refused_everywhere(adapter)
    assert all_files(tmp_path) == []


def test_a_relative_path_is_under_the_first_root(root: Path, tmp_path: Path) -> None:
    adapter = folder_adapter(Path("blog"))
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    assert all_files(tmp_path) == [f"sites/blog/{receipt.external_id}"]
    assert receipt.url == (root / "blog" / receipt.external_id).as_uri()
    assert adapter.find_existing(adapter.render(sample_post()), "nothing-sent") is None


@pytest.mark.parametrize(
    "path",
    [
        "/etc",
        "/root",
        "/",
        "/nonexistent/herald/site",
        "../outside",
        "blog/../../outside",
        "{root}/../outside",
        "{root}/blog/../../outside",
        "{root}-evil",  # a sibling sharing the root's name as a prefix
        "{tmp}/outside",
        "{root}/blog/escape",  # a symlink in the root, to outside it
        "{root}/blog/escape/deeper",
        "{root}/loop",  # a symlink loop
    ],
)
def test_paths_outside_the_roots_are_refused_with_one_message(
    root: Path, tmp_path: Path, path: str
) -> None:
    (root / "blog" / "escape").symlink_to(tmp_path / "outside")
    (root / "loop").symlink_to(root / "loop")
    (tmp_path / "sites-evil").mkdir()
    refused_everywhere(folder_adapter(Path(path.format(root=root, tmp=tmp_path))))
    assert all_files(tmp_path) == []


def test_the_refusal_says_nothing_about_what_exists(root: Path, tmp_path: Path) -> None:
    """/etc exists, /nonexistent does not, /root cannot be read: the same words."""
    messages = set()
    for path in ("/etc", "/nonexistent/x", "/root", "/etc/passwd", str(tmp_path / "outside")):
        with pytest.raises(AuthError) as refused:
            folder_adapter(Path(path)).verify()
        messages.add(refused.value.message)
    assert messages == {OUTSIDE_ROOTS}


def test_tilde_is_a_name_not_the_home_directory(root: Path, tmp_path: Path) -> None:
    (root / "~" / "blog").mkdir(parents=True)
    adapter = folder_adapter(Path("~/blog"))
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    assert all_files(tmp_path) == [f"sites/~/blog/{receipt.external_id}"]
    with pytest.raises(AuthError, match="is not a directory"):
        folder_adapter(Path("~/missing")).verify()


def test_a_symlink_inside_the_roots_to_inside_them_is_fine(root: Path, tmp_path: Path) -> None:
    (root / "current").symlink_to(root / "blog")
    adapter = folder_adapter(root / "current")
    receipt = adapter.publish(adapter.render(sample_post()), new_key())
    assert all_files(tmp_path) == [f"sites/blog/{receipt.external_id}"]
    assert receipt.url == (root / "blog" / receipt.external_id).as_uri()


def test_a_symlink_swapped_in_after_the_check_is_not_followed(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between resolving the path and writing, ``blog`` becomes a symlink to a directory
    outside the root: the write refuses instead of following it."""
    real_realpath = os.path.realpath

    def realpath_then_swap(path: Any, **kwargs: Any) -> Any:
        resolved = real_realpath(path, **kwargs)
        if (root / "blog").is_dir() and not (root / "blog").is_symlink():
            (root / "blog").rename(root / "blog-moved")
            (root / "blog").symlink_to(tmp_path / "outside")
        return resolved

    adapter = folder_adapter(root / "blog")
    monkeypatch.setattr(os.path, "realpath", realpath_then_swap)  # the module the adapter calls
    with pytest.raises(AuthError) as refused:
        adapter.publish(adapter.render(sample_post()), new_key())
    monkeypatch.undo()
    assert refused.value.message == OUTSIDE_ROOTS
    assert all_files(tmp_path / "outside") == []


@pytest.mark.parametrize(
    "title",
    ["../../../etc/cron.d/x", "/etc/passwd", "a/b\\c", ".hidden", "..", "~root", "con:aux*?"],
)
def test_file_names_come_only_from_the_slug(root: Path, tmp_path: Path, title: str) -> None:
    adapter = folder_adapter(root / "blog")
    receipt = adapter.publish(adapter.render(sample_post(title=title)), new_key())
    assert all_files(tmp_path) == [f"sites/blog/{receipt.external_id}"]
    assert "/" not in receipt.external_id and not receipt.external_id.startswith(".")


def test_a_stored_path_that_is_no_file_name_is_refused_when_saved() -> None:
    for path in ("blog\x00/../../etc", "\ud800"):
        with pytest.raises(ValidationError):
            FolderAdapter.build({"path": path})


def test_the_filesystem_never_raises_past_the_adapter(
    adapter: FolderAdapter, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the filesystem raises, the engine sees an adapter error it can classify."""

    def fsync(fd: int) -> None:
        raise ValueError("a library bug")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(AdapterError, match="a library bug"):
        adapter.publish(adapter.render(sample_post()), new_key())


def test_the_default_root_is_sites_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, folder_roots=[])
    assert settings.effective_folder_roots == [(tmp_path / "sites").resolve()]
