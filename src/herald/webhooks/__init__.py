"""Event webhooks: signed HTTP POSTs of what happened in a workspace, written to an
outbox in the transaction that made the change and delivered later (see ``outbox``)."""
