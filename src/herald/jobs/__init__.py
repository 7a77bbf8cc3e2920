"""Background jobs: one row per job started through Herald, the answer to every status query."""
