"""The report after the single-node broker was lost (``cdp up`` rebuilds on a new one, see
``services/runtime.py``): which acknowledged events never reached the warehouse, and what else
went with the broker's topics. It names messageIds only, never personal data."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

log = logging.getLogger("cdp")

OTHER_LOSSES = (
    "every topic starts empty: segment transitions (cdp.segments.membership, cdp.segment.<id>) and "
    "profile versions (cdp.profiles) that subscribers had not read yet are gone from Kafka; they are in "
    "segment_membership_log and profiles, and the current state is published again (re-derivable)",
    "consumer groups start over: external subscribers must reset their offsets (to the beginning of the "
    "new topics), their committed positions belonged to the old broker",
    "records on cdp.events.dlq that nobody had read are gone (cdp_dlq_messages_total counted them)",
    "splits and detaches the admin API accepted in the last moments are lost if identity_corrections "
    "does not hold them yet: submit them again",
    "extra 'cdp run identity' or 'cdp run segments' processes next to cdp up must be restarted",
)


@dataclass
class BrokerLoss:
    """What one loss of the single-node broker cost."""

    at: datetime
    exit_code: int | None
    cluster: str
    """The lost broker's cluster id (the ``kafka_cluster`` of the rows it delivered)."""
    checked: int
    """Acknowledged events not yet confirmed in the warehouse when the broker was lost."""
    lost: list[str] = field(default_factory=list)
    """messageIds acknowledged to clients (HTTP 200) that never reached ``events``."""
    forgotten: int = 0
    """Acknowledged events no longer tracked (over the limit), so not checked."""
    unchecked: str | None = None
    """Why the warehouse could not be asked; ``lost`` then holds every unconfirmed id."""
    path: Path | None = None

    def write(self, data_dir: Path) -> Path | None:
        """``<data dir>/lost/<time>.txt``: one messageId a line (none written when nothing was lost)."""
        if not self.lost:
            return None
        folder = data_dir / "lost"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = self.at.strftime("%Y%m%dT%H%M%SZ")
        path, n = folder / f"{stamp}.txt", 1
        while path.exists():
            n += 1
            path = folder / f"{stamp}-{n}.txt"
        header = (
            f"# messageIds of events acknowledged to clients (HTTP 200) by the broker {self.cluster} that "
            f"never reached the warehouse; lost at {self.at.isoformat()}.\n"
            "# Re-send them from the source: ingest accepts these messageIds again.\n"
        )
        if self.unchecked:
            header += f"# The warehouse could not be asked ({self.unchecked}): some may have arrived.\n"
        path.write_text(header + "".join(f"{message_id}\n" for message_id in self.lost))
        self.path = path
        return path

    def headline(self) -> str:
        exited = f"exited with code {self.exit_code}" if self.exit_code is not None else "was lost"
        if self.unchecked:
            return (
                f"the Kafka broker {exited}: {len(self.lost):,} acknowledged events may be lost (the "
                f"warehouse could not be asked: {self.unchecked}); their messageIds are in {self.path}"
            )
        if not self.lost and not self.forgotten:
            return (
                f"the Kafka broker {exited}: no acknowledged event was lost (all {self.checked:,} "
                "not yet confirmed had reached the warehouse)"
                if self.checked
                else f"the Kafka broker {exited}: no acknowledged event was lost"
            )
        where = f"; their messageIds are in {self.path}" if self.path else ""
        beyond = (
            f"; {self.forgotten:,} earlier acknowledged events were no longer tracked (not checked)"
            if self.forgotten
            else ""
        )
        return (
            f"the Kafka broker {exited}: {len(self.lost):,} events acknowledged to clients never reached "
            f"the warehouse and are lost{where}{beyond}"
        )

    def log(self) -> None:
        level = logging.ERROR if self.lost or self.forgotten or self.unchecked else logging.WARNING
        log.log(level, "%s", self.headline())
        for line in OTHER_LOSSES:
            log.warning("lost with the broker: %s", line)
