from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class MediaRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str
    content_type: str
    size: int = Field(description="Bytes.")
    width: int
    height: int
    alt_text: str
    sha256: str
    created_at: datetime
    url: str = Field("", description="Where to download the image (authenticated).")


class MediaUpdate(BaseModel):
    alt_text: str = Field(max_length=1500, description="What the image shows, for screen readers.")
