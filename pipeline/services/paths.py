"""Files the services write and others read (the stack waits on them, the Pipeline page shows them):
declared here so that readers need not import the services themselves."""

from __future__ import annotations

from pathlib import Path

from pipeline.settings import Settings


def relay_paths(settings: Settings) -> tuple[Path, Path]:
    """(resume token file, status file) of the CDC relay for these settings."""
    base = settings.data_dir / "cdc"
    return base / f"{settings.database}.transaction.resume-token.json", base / "relay-status.json"


def archive_status_path(settings: Settings) -> Path:
    """The archiver's status file (heartbeat and counters)."""
    return settings.effective_archive_dir / "archiver-status.json"
