"""Plain text to Atlassian Document Format, which Jira Cloud (v3) demands for rich-text fields."""

from __future__ import annotations

import re
from typing import Any

_BLANK_LINE = re.compile(r"\n[ \t]*\n+")


def text_to_adf(text: str) -> dict[str, Any]:
    """Paragraphs split on blank lines; a single newline becomes a hard break."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    paragraphs = [p for p in _BLANK_LINE.split(normalized) if p.strip()]
    return {"type": "doc", "version": 1, "content": [_paragraph(p) for p in paragraphs]}


def _paragraph(text: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for i, line in enumerate(text.split("\n")):
        if i:
            content.append({"type": "hardBreak"})
        if line:  # ADF rejects empty text nodes
            content.append({"type": "text", "text": line})
    return {"type": "paragraph", "content": content}


def is_adf(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "doc"
