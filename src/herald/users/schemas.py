"""Users' schemas, and the rule every email Herald stores must pass (API, CLI, `herald up`).

An email in Herald is a sign-in name: Herald sends no mail to it, and self-hosters use
local names (Herald's own first admin is ``admin@herald.localhost``). So the address is
checked for syntax only (email-validator: no DNS, no display name, no quoted or IP
forms), and the special-use names people run at home or on an intranet are allowed:
``localhost``, ``local``, ``test``, ``home.arpa`` and names without a dot.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import email_validator
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from herald.core.dates import UtcDateTime
from herald.users.models import Role

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024
EMAIL_MAX_LENGTH = 320

# email-validator refuses these as not globally deliverable. Its README and module name
# this list as the switch for it ("Test addresses"); Herald validates emails nowhere else.
# ".invalid" (never exists) and ".onion" stay refused.
LOCAL_NAMES = ("localhost", "local", "test", "arpa")
for _name in LOCAL_NAMES:
    if _name in email_validator.SPECIAL_USE_DOMAIN_NAMES:
        email_validator.SPECIAL_USE_DOMAIN_NAMES.remove(_name)


def check_email(value: str) -> str:
    """``value`` as Herald stores it, or ValueError saying what is wrong with it."""
    value = value.strip()
    try:
        checked = email_validator.validate_email(
            value,
            check_deliverability=False,
            globally_deliverable=False,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            strict=True,  # also the 64-character limit of the part before the @
        )
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None
    return checked.normalized


Email = Annotated[
    str,
    # Cheap bound first: a huge string never reaches the parser.
    StringConstraints(max_length=EMAIL_MAX_LENGTH),
    AfterValidator(check_email),
    Field(json_schema_extra={"format": "email"}),
]


def check_password_length(password: str) -> str:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise ValueError(f"The password must be at least {PASSWORD_MIN_LENGTH} characters.")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise ValueError(f"The password must be at most {PASSWORD_MAX_LENGTH} characters.")
    return password


class LoginRequest(BaseModel):
    # Not Email: sign-in only matches what is stored (an unknown address is a plain 401).
    email: str = Field(min_length=1, max_length=EMAIL_MAX_LENGTH)
    password: str = Field(min_length=1, max_length=1024)


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105
    expires_at: datetime | None


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["ci-deploy"])
    expires_at: UtcDateTime | None = Field(
        None, description="ISO 8601 with an offset. Unset: valid until revoked."
    )


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The first characters of the token, to recognise it.")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="Shown once; Herald keeps only its hash.")


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: Role
    workspace_id: uuid.UUID
    is_active: bool
    created_at: datetime


class Me(UserRead):
    workspace_name: str


class UserCreate(BaseModel):
    email: Email
    password: str | None = Field(
        None,
        min_length=PASSWORD_MIN_LENGTH,
        max_length=PASSWORD_MAX_LENGTH,
        description="Unset: one is generated and returned once.",
    )
    role: Role = Role.MEMBER


class UserCreated(UserRead):
    password: str | None = Field(None, description="The generated password, shown once.")
