"""Agents: drafts written on a schedule from a workspace's sources, by a model or by the
built-in extractive digest, within quotas, with every provider call in a ledger."""
