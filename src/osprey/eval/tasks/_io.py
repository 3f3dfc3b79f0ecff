"""Small loaders shared by the task files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_json_or_jsonl(path: Path) -> list[dict[str, Any]]:
    """A JSON list, or one JSON object per line."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        data = json.loads(text)
    else:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list or JSON lines, got {type(data).__name__}")
    return data


def image_path(root: Path, file_name: str) -> Path:
    """``root/file_name``, else ``root/<file_name after its last '_'>`` (COCO_train2014_xxx -> xxx)."""
    path = Path(root) / file_name
    if not path.exists():
        alt = Path(root) / file_name.split("_")[-1]
        if alt.exists():
            return alt
        raise FileNotFoundError(f"image {file_name!r} not found in {root} (also tried {alt.name!r})")
    return path
