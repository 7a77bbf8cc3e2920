"""Folder: write the post as Markdown with YAML front matter for a static site.

Hugo, Jekyll and Astro all read ``---``-fenced YAML front matter. The file name is fixed
by the delivery (date + slug + a short key), and it is written to a temporary file and
renamed into place, so a reader never sees half a post and a second run of the same
delivery finds the file already there and writes nothing.

Where it may write: only inside the configured roots (``HERALD_FOLDER_ROOTS``, by default
``<data_dir>/sites``). A channel's path is absolute or relative to the first root; ``~``
is a name like any other (never the home directory of whoever runs Herald). The path is
normalised and checked against the roots by its text first, so a path outside them is
refused without touching the filesystem; then symlinks are resolved and it is checked
again. Any refusal says the same thing, and nothing about whether the path exists. At
write time the directory is opened again from its root one component at a time without
following symlinks, and every file operation is made relative to that open directory:
a symlink swapped in after the check is refused, never followed. File names come only
from the post's slug, the delivery's key and the extension setting.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml
from pydantic import Field, field_validator

from herald.adapters import base
from herald.adapters.registry import register
from herald.core.clock import utcnow
from herald.core.errors import InvalidInput
from herald.core.settings import get_settings

OUTSIDE_ROOTS = "folder must be inside one of the configured roots (HERALD_FOLDER_ROOTS)"


class FolderCredentials(base.StrictModel):
    path: str = Field(
        min_length=1,
        max_length=4096,
        description="Directory the site reads posts from, inside one of the roots Herald "
        "is configured to write under (HERALD_FOLDER_ROOTS): absolute, or relative to the "
        "first root. `~` is not expanded.",
    )

    @field_validator("path")
    @classmethod
    def _a_file_name(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("path must not contain a NUL character")
        try:
            os.fsencode(value)
        except UnicodeEncodeError:
            raise ValueError("path holds characters no file name can") from None
        return value


class FolderSettings(base.StrictModel):
    extension: str = Field(".md", pattern=r"^\.[A-Za-z0-9]+$")


def locate(path: str, roots: Sequence[Path]) -> tuple[Path, Path] | None:
    """``(root, directory)``: where a channel's ``path`` leads, symlinks resolved, and the
    root it lies in; None when it lies in none. ``roots`` are resolved already."""
    if not roots:
        return None
    try:
        # By its text first: a path outside every root is refused before any lookup.
        lexical = Path(os.path.normpath(roots[0] / path))
        if not any(lexical.is_relative_to(root) for root in roots):
            return None
        resolved = Path(os.path.realpath(lexical))
    except (OSError, ValueError):
        return None
    for root in roots:
        if resolved.is_relative_to(root):
            return root, resolved
    return None


def _open_beneath(root: Path, directory: Path) -> int:
    """An open descriptor of ``directory``, reached from ``root`` one name at a time,
    following no symlink: what it names now lies inside the root, whatever was swapped
    in since ``directory`` was resolved."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        raise base.AuthError(f"{directory} is not a directory") from None
    try:
        for name in directory.relative_to(root).parts:
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise _open_failure(exc, fd, name, directory) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_failure(exc: OSError, parent: int, name: str, directory: Path) -> base.AuthError:
    with contextlib.suppress(OSError):
        if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            return base.AuthError(OUTSIDE_ROOTS)  # a symlink put there after the path was checked
    if exc.errno in (errno.EACCES, errno.EPERM):
        return base.AuthError(f"{directory} is not writable by Herald")
    return base.AuthError(f"{directory} is not a directory")


def slugify(text: str, max_length: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "post"


@register
class FolderAdapter(base.Adapter[FolderCredentials, FolderSettings]):
    platform = "folder"
    display_name = "Static-site folder"
    credentials_model = FolderCredentials
    settings_model = FolderSettings

    def _located(self) -> tuple[Path, Path]:
        located = locate(self.credentials.path, get_settings().effective_folder_roots)
        if located is None:
            raise base.AuthError(OUTSIDE_ROOTS)
        return located

    @contextlib.contextmanager
    def _directory(self) -> Iterator[tuple[int, Path]]:
        """The channel's directory, open (see :func:`_open_beneath`), and its path."""
        root, directory = self._located()
        fd = _open_beneath(root, directory)
        try:
            yield fd, directory
        finally:
            os.close(fd)

    def check_destination(self) -> None:
        super().check_destination()
        try:
            self._located()
        except base.AuthError as exc:
            raise InvalidInput(
                f"credentials.path: {exc.message}",
                errors=[
                    {
                        "loc": ["body", "credentials", "path"],
                        "msg": exc.message,
                        "type": "value_error",
                    }
                ],
            ) from None

    def verify(self) -> base.Identity:
        with self._directory() as (fd, directory):
            _check_writable(fd, directory)
        return base.Identity(name=f"folder {directory.name!r} is writable")

    def render(self, post: base.PostContent) -> base.Rendition:
        front: dict[str, object] = {"title": post.title, "date": utcnow().isoformat()}
        if post.excerpt:
            front["description"] = post.excerpt
        if post.tags:
            front["tags"] = list(post.tags)
        if post.canonical_url:
            front["canonical_url"] = post.canonical_url
        text = "---\n" + yaml.safe_dump(front, allow_unicode=True, sort_keys=False) + "---\n\n"
        text += post.body.rstrip("\n") + "\n"
        return base.Rendition(format="markdown", parts=(text,), title=post.title)

    def _filename(self, rendition: base.Rendition, idempotency_key: str) -> str:
        digest = re.sub(r"[^A-Za-z0-9]", "", idempotency_key)[-12:] or "x"
        return f"{slugify(rendition.title or 'post')}-{digest}{self.settings.extension}"

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        name = self._filename(rendition, idempotency_key)
        with self._directory() as (fd, directory), _classified(directory / name):
            return _receipt(directory, name) if _exists(fd, name) else None

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        name = self._filename(rendition, idempotency_key)
        with self._directory() as (fd, directory), _classified(directory / name):
            _check_writable(fd, directory)
            if not _exists(fd, name):
                _write(fd, name, rendition.parts[0])
            return _receipt(directory, name)


def _check_writable(fd: int, directory: Path) -> None:
    if not os.access(".", os.W_OK | os.X_OK, dir_fd=fd):
        raise base.AuthError(f"{directory} is not writable by Herald")


def _exists(fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _write(fd: int, name: str, text: str) -> None:
    tmp = f".herald-{secrets.token_hex(8)}.tmp"
    # os.open with 0o666 lets the umask decide the mode, as for any file we create.
    file = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=fd)
    try:
        with os.fdopen(file, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # link() fails if the target exists, so two racing runs cannot both write it.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=fd)


def _receipt(directory: Path, name: str) -> base.Receipt:
    # The directory is absolute (resolved), so as_uri() cannot refuse it.
    return base.Receipt(external_id=name, url=(directory / name).as_uri())


@contextlib.contextmanager
def _classified(target: Path) -> Iterator[None]:
    """Whatever the filesystem raises becomes an adapter error: the engine must never see
    an exception it cannot classify (it would retry it forever)."""
    try:
        yield
    except base.AdapterError:
        raise
    except OSError as exc:
        raise base.PermanentError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise base.PermanentError(f"cannot write {target}: {exc}") from exc
