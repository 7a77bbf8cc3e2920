"""Operational metrics read from the database and Redis at scrape time (see collector)."""
