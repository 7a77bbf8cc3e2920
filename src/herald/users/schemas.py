from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from herald.core.types import IsoDateTime
from herald.users.models import Role


class LoginRequest(BaseModel):
    # Not EmailStr: sign-in matches what is stored, and the first admin's address
    # (admin@herald.localhost) is a special-use domain that email validation refuses.
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105
    expires_at: datetime | None


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["ci-deploy"])
    expires_at: IsoDateTime | None = Field(None, description="Unset: valid until revoked.")


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
    email: EmailStr
    password: str | None = Field(
        None,
        min_length=8,
        max_length=1024,
        description="Unset: one is generated and returned once.",
    )
    role: Role = Role.MEMBER


class UserCreated(UserRead):
    password: str | None = Field(None, description="The generated password, shown once.")
