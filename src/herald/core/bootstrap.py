"""Transition, removed at merge: moved to :mod:`herald.runtime.bootstrap` (core imports no
feature); tests on another branch still import it from here."""

from herald.runtime.bootstrap import FIRST_ADMIN_EMAIL, create_first_admin, prepare

__all__ = ["FIRST_ADMIN_EMAIL", "create_first_admin", "prepare"]
