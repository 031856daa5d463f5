"""Logging a run of failures of something that retries (a warehouse insert, a periodic reload) without
flooding the log: the first failure, a reminder a minute while it goes on, and the recovery. A
30 s warehouse outage thus leaves two lines per retrying task, a one-hour outage about sixty.
"""

from __future__ import annotations

import logging
import time

REMIND_SECONDS = 60.0


class FailureLog:
    """``what`` names the task in the log lines (``warehouse insert into events``); ``then`` says
    what happens meanwhile (``retrying with back-off; the records wait on Kafka``)."""

    def __init__(self, log: logging.Logger, what: str, then: str, remind_seconds: float = REMIND_SECONDS):
        self._log = log
        self._what = what
        self._then = then
        self._remind_seconds = remind_seconds
        self.failures = 0
        self._started = 0.0
        self._reminded = 0.0

    def failed(self, summary: str) -> None:
        """One more failure (``summary``: the error, without personal data)."""
        self.failures += 1
        now = time.monotonic()
        if self.failures == 1:
            self._started = self._reminded = now
            self._log.warning("%s failed (%s); %s", self._what, summary, self._then)
        elif now - self._reminded >= self._remind_seconds:
            self._reminded = now
            self._log.warning(
                "%s still failing after %d attempts over %.0f s (%s)",
                self._what, self.failures, now - self._started, summary,
            )  # fmt: skip

    def succeeded(self) -> None:
        """It worked: ends a run of failures (logged once), else nothing."""
        if self.failures:
            self._log.info(
                "%s works again after %d failed attempts over %.0f s",
                self._what, self.failures, time.monotonic() - self._started,
            )  # fmt: skip
            self.failures = 0
