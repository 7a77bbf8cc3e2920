from __future__ import annotations

import os
import socket
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.core.clock import utcnow
from herald.scheduling.models import Heartbeat

SCHEDULER = "scheduler"


def beat(session: Session, name: str = SCHEDULER) -> None:
    now = utcnow()
    values = {"beat_at": now, "host": socket.gethostname(), "pid": os.getpid()}
    result = session.execute(update(Heartbeat).where(Heartbeat.name == name).values(**values))
    if not getattr(result, "rowcount", 0):
        try:
            with session.begin_nested():
                session.add(Heartbeat(name=name, **values))
        except IntegrityError:
            pass  # a second scheduler wrote it first: either beat is fine


def last_beat(session: Session, name: str = SCHEDULER) -> datetime | None:
    row = session.get(Heartbeat, name)
    return row.beat_at if row else None
