"""Every change to a delivery, in one place (as Wagtail's ``actions/``): the API, the
CLI, the scheduler and the worker call these, so they behave identically.

Each goes through :func:`transition`, the one compare-and-set: it checks the move
against ``publishing.models.TRANSITIONS``, updates only from the expected states,
brings the job row along, sends the ``publication.state`` event after commit and keeps
the post's state in step.

- ``request``: :func:`publish` (new deliveries, now or at a time; a slot is a time)
- ``control``: :func:`cancel` (the one cancel rule), :func:`unschedule`,
  :func:`reschedule`, :func:`retry`, :func:`retry_failed`
- ``attempt``: :func:`claim`, :func:`record_outcome` (a hold for reconnect included)
- ``dispatch``: :func:`dispatch_due`, :func:`fail_missed`, :func:`release_held`, and the
  reconciler's :func:`resend`, :func:`requeue_abandoned`, :func:`settle_unconfirmed`
"""

from herald.publishing.actions.attempt import backoff_seconds, claim, record_outcome
from herald.publishing.actions.compare_and_set import (
    JOB_STATE,
    ChangedRow,
    IllegalTransition,
    enqueue,
    send_all,
    transition,
)
from herald.publishing.actions.control import (
    AlreadyPublished,
    cancel,
    reschedule,
    retry,
    retry_failed,
    revoke_after_commit,
    unschedule,
)
from herald.publishing.actions.dispatch import (
    Pointer,
    dispatch_due,
    fail_missed,
    release_held,
    requeue_abandoned,
    resend,
    settle_unconfirmed,
    waiting_to_dispatch,
)
from herald.publishing.actions.request import publish

__all__ = [
    "JOB_STATE",
    "AlreadyPublished",
    "ChangedRow",
    "IllegalTransition",
    "Pointer",
    "backoff_seconds",
    "cancel",
    "claim",
    "dispatch_due",
    "enqueue",
    "fail_missed",
    "publish",
    "record_outcome",
    "release_held",
    "requeue_abandoned",
    "reschedule",
    "resend",
    "retry",
    "retry_failed",
    "revoke_after_commit",
    "send_all",
    "settle_unconfirmed",
    "transition",
    "unschedule",
    "waiting_to_dispatch",
]
