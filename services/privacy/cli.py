"""``cdp privacy``: DSGVO/GDPR operations against a running platform, through its admin API."""

from __future__ import annotations

import typer

from services.privacy import request_cli
from services.privacy.consent_cli import consent, consents

privacy_app = typer.Typer(no_args_is_help=True)


@privacy_app.callback()
def privacy() -> None:
    """DSGVO/GDPR: consent records, export (Art. 15), erasure (Art. 17), the privacy audit."""


privacy_app.command("consents")(consents)
privacy_app.command("consent")(consent)
request_cli.register(privacy_app)
