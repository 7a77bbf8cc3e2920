"""Live events: state changes published to a per-workspace Redis stream and served to
clients as server-sent events at ``GET /api/v1/events``."""
