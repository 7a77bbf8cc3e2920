"""Input types that accept what the OpenAPI document says they accept, and no more.

Pydantic's lax mode reads more than the JSON Schema it publishes: a number, or a string of
digits, as a Unix-timestamp date-time (``"expires_at": 0`` was a token that expired in
1970), and ``true``/``false`` as 1/0. A client relying on that relies on something the
document does not promise; Schemathesis (tests/test_schemathesis.py) reports each one.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def refuse_numbers(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError(
            "give a date and time in ISO 8601, such as 2026-10-25T09:00:00+02:00, not a number"
        )
    return value


# A date-time in ISO 8601 (``date-time`` in the document); never a Unix timestamp.
IsoDateTime = Annotated[datetime, BeforeValidator(refuse_numbers)]
# An integer, never a boolean or a string of digits (in a JSON body).
StrictInt = Annotated[int, Strict()]
# A number, never a boolean or a string.
StrictFloat = Annotated[float, Strict()]
