"""A small Lexicon validator: checks AT Protocol data against Bluesky's published schemas.

Lexicon is not JSON Schema (see ``../shared/platform-specs/README.md``): strings count
``maxLength`` in UTF-8 bytes and ``maxGraphemes`` in user-perceived characters; a
``union`` picks its member by the value's ``$type`` (closed unions refuse other types,
open ones accept them unchecked); a ``blob`` is a typed reference with ``accept`` and
``maxSize``; ``unknown`` is any object; ``knownValues`` documents values without closing
the set. This covers what Herald's records and calls use:

- types: object (``required``, ``nullable``, ``properties``; other keys allowed), record
  (``$type`` and the record key), string, integer, boolean, array, ref (``#local`` and
  ``nsid#def``), union, blob, unknown, cid-link, bytes, token, params;
- string formats: datetime, did, handle, at-identifier, nsid, record-key, tid, at-uri,
  cid, uri, language.

Schemas are read lazily, one file per NSID, through :func:`tests.fakes.specs.spec_path`,
so a reference into a file the specs folder lacks is only an error if data reaches it.
Without the specs folder every check answers "no errors" (that conformance layer is
skipped; the fake's own checks still run).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

import regex

from tests.fakes.specs import spec_path

Path = str  # where in the value an error is, for messages ("record.facets.0.index")

_SEGMENT = r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
_HANDLE = re.compile(rf"^({_SEGMENT}\.)+[a-zA-Z]([a-zA-Z0-9-]{{0,61}}[a-zA-Z0-9])?$")
_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$")
_NSID = re.compile(
    r"^[a-zA-Z]([a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?)+"
    r"\.[a-zA-Z][a-zA-Z0-9]{0,62}$"
)
_RECORD_KEY = re.compile(r"^[a-zA-Z0-9_~.:-]{1,512}$")
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_CID = re.compile(r"^[a-zA-Z0-9+=]{8,256}$")
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$")
_LANGUAGE = re.compile(r"^([a-zA-Z]{2,3}|[ix])(-[a-zA-Z0-9]{1,8})*$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _is_handle(value: str) -> bool:
    return len(value) <= 253 and bool(_HANDLE.match(value))


def _is_did(value: str) -> bool:
    return len(value) <= 2048 and bool(_DID.match(value))


def _is_record_key(value: str) -> bool:
    return value not in (".", "..") and bool(_RECORD_KEY.match(value))


def _is_at_uri(value: str) -> bool:
    if not value.startswith("at://") or len(value) > 8192:
        return False
    authority, _, rest = value[len("at://") :].partition("/")
    if not (_is_did(authority) or _is_handle(authority)):
        return False
    if not rest:
        return True
    collection, _, rkey = rest.partition("/")
    return bool(_NSID.match(collection)) and (not rkey or _is_record_key(rkey))


def _is_datetime(value: str) -> bool:
    # RFC 3339 with a mandatory time zone; "-00:00" (unknown offset) is not allowed.
    if not _DATETIME.match(value) or value.endswith("-00:00"):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_FORMATS: dict[str, Callable[[str], bool]] = {
    "datetime": _is_datetime,
    "did": _is_did,
    "handle": _is_handle,
    "at-identifier": lambda v: _is_did(v) or _is_handle(v),
    "nsid": lambda v: len(v) <= 317 and bool(_NSID.match(v)),
    "record-key": _is_record_key,
    "tid": lambda v: bool(_TID.match(v)),
    "at-uri": _is_at_uri,
    "cid": lambda v: bool(_CID.match(v)),
    "uri": lambda v: len(v) <= 8192 and bool(_URI.match(v)),
    "language": lambda v: bool(_LANGUAGE.match(v)),
}


def graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


@lru_cache(maxsize=64)
def _document(nsid: str) -> dict[str, Any] | None:
    path = spec_path("bluesky/lexicons/" + nsid.replace(".", "/") + ".json")
    if path is None:
        return None
    document: dict[str, Any] = json.loads(path.read_text())
    if document.get("id") != nsid:
        raise ValueError(f"{path} holds {document.get('id')!r}, not {nsid!r}")
    return document


def available() -> bool:
    """Whether the published lexicons are there to check against."""
    return spec_path("bluesky/lexicons") is not None


def _split(ref: str, context: str) -> tuple[str, str]:
    """``(nsid, def name)`` for a ref written in the document ``context``."""
    if ref.startswith("#"):
        return context, ref[1:]
    nsid, _, name = ref.partition("#")
    return nsid, name or "main"


def _full(ref: str, context: str) -> str:
    """A ref as ``$type`` spells it: ``nsid`` for a main definition, else ``nsid#name``."""
    nsid, name = _split(ref, context)
    return nsid if name == "main" else f"{nsid}#{name}"


class Lexicon:
    """Validates values against lexicon definitions; every method returns a list of errors
    (empty when the value fits, and always empty without the specs folder)."""

    @staticmethod
    def available() -> bool:
        return available()

    def definition(self, ref: str, context: str = "") -> tuple[dict[str, Any], str]:
        nsid, name = _split(ref, context)
        document = _document(nsid)
        if document is None:
            raise LookupError("no lexicons")
        try:
            return document["defs"][name], nsid
        except KeyError:
            raise LookupError(f"{nsid} has no definition {name!r}") from None

    # -- entry points -------------------------------------------------------------------

    def record_errors(
        self, collection: str, value: Any, rkey: str | None = None, where: Path = "record"
    ) -> list[str]:
        """A record of ``collection`` (its ``record`` definition), and its record key."""
        if not available():
            return []
        schema, nsid = self.definition(collection)
        if schema.get("type") != "record":
            return [f"{collection} is not a record type"]
        errors: list[str] = []
        if not isinstance(value, dict):
            return [f"{where}: must be an object"]
        if value.get("$type") != collection:
            errors.append(f"{where}.$type: must be {collection!r}, got {value.get('$type')!r}")
        if rkey is not None:
            errors += self._key_errors(schema.get("key", "any"), rkey)
        return errors + self.check(schema["record"], value, where, nsid)

    def input_errors(self, nsid: str, body: Any, where: Path = "input") -> list[str]:
        """The JSON body of a procedure (``com.atproto.repo.createRecord`` …)."""
        if not available():
            return []
        schema, context = self.definition(nsid)
        input_schema = schema.get("input", {}).get("schema")
        if input_schema is None:
            return [] if body is None else [f"{where}: {nsid} takes no JSON body"]
        return self.check(input_schema, body, where, context)

    def params_errors(self, nsid: str, params: dict[str, str], where: Path = "params") -> list[str]:
        """The query parameters of a query (``com.atproto.repo.getRecord`` …), as strings."""
        if not available():
            return []
        schema, context = self.definition(nsid)
        spec = schema.get("parameters", {"properties": {}})
        errors = [
            f"{where}.{name}: required" for name in spec.get("required", []) if name not in params
        ]
        properties = spec.get("properties", {})
        for name, raw in params.items():
            prop = properties.get(name)
            if prop is None:
                errors.append(f"{where}.{name}: not a parameter of {nsid}")
                continue
            value: Any = raw
            if prop.get("type") == "integer":
                value = int(raw) if re.fullmatch(r"-?\d+", raw) else raw
            elif prop.get("type") == "boolean":
                value = {"true": True, "false": False}.get(raw, raw)
            errors += self.check(prop, value, f"{where}.{name}", context)
        return errors

    def errors(self, ref: str, value: Any, where: Path = "value") -> list[str]:
        """``value`` against any definition (``app.bsky.richtext.facet``, ``nsid#def``)."""
        if not available():
            return []
        return self.check({"type": "ref", "ref": ref}, value, where, "")

    # -- the types ----------------------------------------------------------------------

    def check(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        kind = schema.get("type")
        checker: Callable[..., list[str]] | None = getattr(
            self, "_" + str(kind).replace("-", "_"), None
        )
        if checker is None:
            return [f"{where}: the validator does not know lexicon type {kind!r}"]
        return checker(schema, value, where, context)

    def _key_errors(self, key: str, rkey: str) -> list[str]:
        if not _is_record_key(rkey):
            return [f"rkey: {rkey!r} is not a valid record key"]
        if key == "tid" and not _TID.match(rkey):
            return [f"rkey: must be a TID, got {rkey!r}"]
        if key == "nsid" and not _NSID.match(rkey):
            return [f"rkey: must be an NSID, got {rkey!r}"]
        if key.startswith("literal:") and rkey != key.removeprefix("literal:"):
            return [f"rkey: must be {key.removeprefix('literal:')!r}, got {rkey!r}"]
        return []

    def _object(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: must be an object"]
        errors: list[str] = []
        nullable = set(schema.get("nullable", []))
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}.{name}: required")
        for name, prop in schema.get("properties", {}).items():
            if name not in value:
                continue
            if value[name] is None:
                if name not in nullable:
                    errors.append(f"{where}.{name}: may not be null")
                continue
            errors += self.check(prop, value[name], f"{where}.{name}", context)
        return errors

    def _params(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        return self._object(schema, value, where, context)

    def _record(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        errors = []
        if isinstance(value, dict) and value.get("$type") != context:
            errors.append(f"{where}.$type: must be {context!r}")
        return errors + self.check(schema["record"], value, where, context)

    def _string(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        if not isinstance(value, str):
            return [f"{where}: must be a string"]
        errors: list[str] = []
        size = len(value.encode())
        if "maxLength" in schema and size > schema["maxLength"]:
            errors.append(f"{where}: {size} UTF-8 bytes, more than {schema['maxLength']}")
        if "minLength" in schema and size < schema["minLength"]:
            errors.append(f"{where}: {size} UTF-8 bytes, fewer than {schema['minLength']}")
        if "maxGraphemes" in schema or "minGraphemes" in schema:
            count = graphemes(value)
            if count > schema.get("maxGraphemes", count):
                errors.append(f"{where}: {count} graphemes, more than {schema['maxGraphemes']}")
            if count < schema.get("minGraphemes", count):
                errors.append(f"{where}: {count} graphemes, fewer than {schema['minGraphemes']}")
        if "const" in schema and value != schema["const"]:
            errors.append(f"{where}: must be {schema['const']!r}")
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
        # knownValues is deliberately open: other values are allowed, so nothing to check.
        form = schema.get("format")
        if form is not None:
            test = _FORMATS.get(form)
            if test is None:
                errors.append(f"{where}: the validator does not know format {form!r}")
            elif not test(value):
                errors.append(f"{where}: {value!r} is not a valid {form}")
        return errors

    def _integer(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: must be an integer"]
        errors = []
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} is less than {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} is more than {schema['maximum']}")
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{where}: {value} is not one of {schema['enum']}")
        if "const" in schema and value != schema["const"]:
            errors.append(f"{where}: must be {schema['const']}")
        return errors

    def _boolean(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        if not isinstance(value, bool):
            return [f"{where}: must be a boolean"]
        if "const" in schema and value != schema["const"]:
            return [f"{where}: must be {schema['const']}"]
        return []

    def _array(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{where}: must be an array"]
        errors = []
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: {len(value)} items, more than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{where}: {len(value)} items, fewer than {schema['minLength']}")
        for index, item in enumerate(value):
            errors += self.check(schema["items"], item, f"{where}.{index}", context)
        return errors

    def _ref(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        try:
            target, target_context = self.definition(schema["ref"], context)
        except LookupError as exc:
            return [f"{where}: {exc}"]
        return self.check(target, value, where, target_context)

    def _union(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: must be an object"]
        kind = value.get("$type")
        if not isinstance(kind, str) or not kind:
            return [f"{where}.$type: required in a union"]
        if kind.endswith("#main"):
            return [f"{where}.$type: {kind!r} must be written without '#main'"]
        members = {_full(ref, context): ref for ref in schema.get("refs", [])}
        if kind not in members:
            if schema.get("closed", False):
                return [f"{where}.$type: {kind!r} is not one of {sorted(members)}"]
            return []  # an open union takes types it does not know, unchecked
        return self._ref({"ref": members[kind]}, value, where, context)

    def _blob(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        if not isinstance(value, dict) or value.get("$type") != "blob":
            return [f"{where}: must be a blob ({{'$type': 'blob', ref, mimeType, size}})"]
        errors = self._cid_link({}, value.get("ref"), f"{where}.ref", context)
        mime, size = value.get("mimeType"), value.get("size")
        if not isinstance(mime, str) or "/" not in mime:
            errors.append(f"{where}.mimeType: must be a MIME type")
        elif "accept" in schema and not any(_accepts(p, mime) for p in schema["accept"]):
            errors.append(f"{where}.mimeType: {mime!r} is not one of {schema['accept']}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            errors.append(f"{where}.size: must be a non-negative integer")
        elif "maxSize" in schema and size > schema["maxSize"]:
            errors.append(f"{where}.size: {size} bytes, more than {schema['maxSize']}")
        return errors

    def _cid_link(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        if not isinstance(value, dict) or set(value) != {"$link"}:
            return [f"{where}: must be a CID link ({{'$link': cid}})"]
        link = value["$link"]
        if not isinstance(link, str) or not _CID.match(link):
            return [f"{where}.$link: not a CID"]
        return []

    def _bytes(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        if not isinstance(value, dict) or set(value) != {"$bytes"}:
            return [f"{where}: must be bytes ({{'$bytes': base64}})"]
        try:
            data = base64.b64decode(value["$bytes"] + "==", validate=False)
        except (binascii.Error, TypeError):
            return [f"{where}.$bytes: not base64"]
        if "maxLength" in schema and len(data) > schema["maxLength"]:
            return [f"{where}: {len(data)} bytes, more than {schema['maxLength']}"]
        return []

    def _unknown(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        # Lexicon's "unknown" is any data object, not any value.
        return [] if isinstance(value, dict) else [f"{where}: must be an object"]

    def _token(self, schema: dict[str, Any], value: Any, where: Path, context: str) -> list[str]:
        return [f"{where}: a token is a name, not a value"]


def _accepts(pattern: str, mime: str) -> bool:
    if pattern == "*/*":
        return True
    if pattern.endswith("/*"):
        return mime.startswith(pattern[:-1])
    return mime == pattern


lexicon = Lexicon()
