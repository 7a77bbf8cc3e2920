"""Backups: archives of the database, media and generated keys, and restoring them."""
