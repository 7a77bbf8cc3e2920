"""Logging for every Herald process: one format, request ids, no secrets."""

from __future__ import annotations

import logging
import re

# Anything that looks like a bearer token or a Fernet token is masked before a line is
# written, as a second line of defence: Herald never logs credentials on purpose.
_SECRET_PATTERNS = (
    re.compile(r"hld_[A-Za-z0-9_\-]{20,}"),
    re.compile(r"gAAAAA[A-Za-z0-9_\-=]{20,}"),
    re.compile(r"(?i)(authorization:\s*\w+\s+)\S+"),
)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for pattern in _SECRET_PATTERNS:
            redacted = pattern.sub(
                lambda m: (m.group(1) if m.groups() else "") + "[redacted]", redacted
            )
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(root, "_herald_configured", False):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    )
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root._herald_configured = True  # type: ignore[attr-defined]
