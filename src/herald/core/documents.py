"""Bounds on a free-form JSON document from a client (channel credentials and settings,
source settings): keys, nesting, list and string lengths, checked before the platform's
own schema validates it. Pydantic only: the schemas that use it load in the command line,
which must not import the web stack."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

MAX_KEYS = 50
MAX_DEPTH = 5
MAX_ITEMS = 200
MAX_STRING = 8192
MAX_KEY = 100


def _check_document(value: Any, path: str, depth: int) -> None:
    where = f"{path!r} " if path else ""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ValueError(f"{where}is longer than {MAX_STRING:,} characters")
    elif isinstance(value, dict):
        if len(value) > MAX_KEYS:
            raise ValueError(f"{where}has more than {MAX_KEYS} keys")
        for key, item in value.items():
            if len(key) > MAX_KEY:
                raise ValueError(f"{where}has a key longer than {MAX_KEY} characters")
            _check_document(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_ITEMS:
            raise ValueError(f"{where}has more than {MAX_ITEMS} items")
        for index, item in enumerate(value):
            _check_document(item, f"{path}[{index}]", depth + 1)


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    _check_document(value, "", 0)
    return value


# A free-form JSON object from a client (channel credentials and settings): at most
# MAX_KEYS keys per object, MAX_DEPTH levels, MAX_ITEMS per list and MAX_STRING characters
# per string (a secret, a token, a URL). The platform's own schema then says what each
# field may hold; these bounds come first, so a huge document is refused before it is
# validated, encrypted and stored.
BoundedDocument = Annotated[dict[str, Any], AfterValidator(_bounded)]
DOCUMENT_LIMITS = (
    f"At most {MAX_KEYS} keys per object, {MAX_ITEMS} items per list, {MAX_DEPTH} levels "
    f"and {MAX_STRING:,} characters per string."
)
