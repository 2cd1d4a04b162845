"""Files the page offers for download (summaries, CSV tables), written once per content.

Each file is named by a hash of its content, so the same table gives the same file, and each
folder keeps only its newest `keep` files however many users download (Gradio serves a copy
from its own cache, deleted after an hour).
"""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

DOWNLOAD_ROOT = Path(tempfile.gettempdir()) / "resnext-explorer-downloads"


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def write_download(content: str, prefix: str, suffix: str, directory: Path | None = None,
                   keep: int = 64) -> Path:
    """Write `content` to `<directory>/<prefix>-<hash><suffix>` and return the path."""
    directory = directory or DOWNLOAD_ROOT / prefix
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    path = directory / f"{prefix}-{digest}{suffix}"
    path.write_text(content, encoding="utf-8")
    files = sorted(directory.glob(f"{prefix}-*{suffix}"), key=lambda p: p.stat().st_mtime_ns)
    for old in files[:-keep]:
        old.unlink(missing_ok=True)
    return path
