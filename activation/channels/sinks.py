"""File/console sinks for the embedded mode: one JSON line per message, nothing leaves the host."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

_lock = threading.Lock()


def sink_write(*, url: str, channel: str, record: dict) -> str:
    """Append ``record`` to ``<dir>/<channel>-YYYYMMDD.jsonl`` (``file://``) or stdout
    (``console://``); return the sink's reference for the provider message id."""
    parts = urlsplit(url)
    line = json.dumps(record, ensure_ascii=False, default=str)
    if parts.scheme == "console":
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return "console"
    if parts.scheme != "file":
        raise ValueError(f"unsupported sink URL {url!r}; use file:///dir or console://")
    folder = Path(unquote(parts.netloc + parts.path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{channel}-{datetime.now(UTC):%Y%m%d}.jsonl"
    with _lock, path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    return f"file:{path.name}"
