"""Folder: write the post as Markdown with YAML front matter for a static site.

Hugo, Jekyll and Astro all read ``---``-fenced YAML front matter. The file name is fixed
by the delivery (date + slug + a short key), and it is written to a temporary file and
renamed into place, so a reader never sees half a post and a second run of the same
delivery finds the file already there and writes nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import unicodedata
from pathlib import Path

import yaml
from pydantic import Field

from herald.adapters.base import (
    Adapter,
    AuthError,
    Identity,
    PermanentError,
    PostContent,
    Receipt,
    Rendition,
    StrictModel,
)
from herald.adapters.registry import register
from herald.core.clock import utcnow


class FolderCredentials(StrictModel):
    path: str = Field(min_length=1, description="Directory the site reads posts from.")


class FolderSettings(StrictModel):
    extension: str = Field(".md", pattern=r"^\.[A-Za-z0-9]+$")


def slugify(text: str, max_length: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "post"


@register
class FolderAdapter(Adapter[FolderCredentials, FolderSettings]):
    platform = "folder"
    display_name = "Static-site folder"
    credentials_model = FolderCredentials
    settings_model = FolderSettings

    @property
    def directory(self) -> Path:
        return Path(self.credentials.path).expanduser()

    def verify(self) -> Identity:
        directory = self.directory
        if not directory.is_dir():
            raise AuthError(f"{directory} is not a directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise AuthError(f"{directory} is not writable by Herald")
        return Identity(name=f"folder {directory.name!r} is writable")

    def render(self, post: PostContent) -> Rendition:
        front: dict[str, object] = {"title": post.title, "date": utcnow().isoformat()}
        if post.excerpt:
            front["description"] = post.excerpt
        if post.tags:
            front["tags"] = list(post.tags)
        if post.canonical_url:
            front["canonical_url"] = post.canonical_url
        text = "---\n" + yaml.safe_dump(front, allow_unicode=True, sort_keys=False) + "---\n\n"
        text += post.body.rstrip("\n") + "\n"
        return Rendition(format="markdown", parts=(text,), title=post.title)

    def _filename(self, rendition: Rendition, idempotency_key: str) -> str:
        digest = re.sub(r"[^A-Za-z0-9]", "", idempotency_key)[-12:] or "x"
        return f"{slugify(rendition.title or 'post')}-{digest}{self.settings.extension}"

    def find_existing(self, rendition: Rendition, idempotency_key: str) -> Receipt | None:
        target = self.directory / self._filename(rendition, idempotency_key)
        return Receipt(external_id=target.name, url=target.as_uri()) if target.exists() else None

    def publish(self, rendition: Rendition, idempotency_key: str) -> Receipt:
        self.verify()
        existing = self.find_existing(rendition, idempotency_key)
        if existing is not None:
            return existing
        target = self.directory / self._filename(rendition, idempotency_key)
        tmp = self.directory / f".herald-{secrets.token_hex(8)}.tmp"
        try:
            # os.open with 0o666 lets the umask decide the mode, as for any file we create.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(rendition.parts[0])
                    fh.flush()
                    os.fsync(fh.fileno())
                # link() fails if the target exists, so two racing runs cannot both write it.
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        except OSError as exc:
            raise PermanentError(f"cannot write {target}: {exc.strerror}") from exc
        return Receipt(external_id=target.name, url=target.as_uri())
