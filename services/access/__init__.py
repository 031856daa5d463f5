"""Access control: API tokens and per-source write keys (stored hashed in the warehouse), their
reload, the admin API and CLI that manage them, and the admin audit log."""
