"""The web dashboard: a single page over the public API."""
