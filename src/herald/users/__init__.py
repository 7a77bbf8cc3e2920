"""Workspaces, users, roles, logins and API tokens."""
