from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class BackupRead(BaseModel):
    name: str
    size: int = Field(description="Bytes.")
    created_at: datetime
    checksum: Literal["verified", "unverified", "corrupt"] = Field(
        description="As last checked: `verified`, `corrupt`, or `unverified` (never checked, "
        "or the file changed since)."
    )
