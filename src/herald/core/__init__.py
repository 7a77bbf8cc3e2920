"""Pieces every feature shares: settings, database, errors, security, clock."""
