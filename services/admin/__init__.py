"""The admin API under ``/api/v1/`` (profile 360 for service agents) and its ``cdp profiles`` CLI."""
