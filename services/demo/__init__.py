"""``cdp demo``: a seeded, realistic German online shop (shop, chat and email traffic) sent to ingest."""

from services.demo.generator import DemoConfig, estimate_total, generate_history, generate_live
from services.demo.runner import ServerNotReadyError, run_demo
from services.demo.sender import DemoProgress, DemoStats, SendGaveUpError, send

__all__ = [
    "DemoConfig",
    "DemoProgress",
    "DemoStats",
    "SendGaveUpError",
    "ServerNotReadyError",
    "estimate_total",
    "generate_history",
    "generate_live",
    "run_demo",
    "send",
]
