"""Atlassian Document Format: recognising a document and converting to and from plain text.

Jira Cloud's v3 API speaks ADF for rich text and v2 speaks plain (wiki) strings over the same
data, so the sandbox stores what it was given and converts on the way out.
"""

from __future__ import annotations

from typing import Any

NOT_A_DOCUMENT = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"


def is_document(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and value.get("version") == 1
        and isinstance(value.get("content"), list)
    )


def from_text(text: str) -> dict[str, Any]:
    """Paragraphs at blank lines, hard breaks at single newlines."""
    paragraphs: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        content: list[dict[str, Any]] = []
        for index, line in enumerate(block.split("\n")):
            if index:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def _node_text(node: Any) -> str:
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    if kind == "text":
        return str(node.get("text", ""))
    if kind == "hardBreak":
        return "\n"
    children = node.get("content")
    if not isinstance(children, list):
        return ""
    if kind == "doc":
        return "\n\n".join(_node_text(child) for child in children)
    return "".join(_node_text(child) for child in children)


def to_text(document: dict[str, Any]) -> str:
    return _node_text(document)


def as_version(value: Any, version: int) -> Any:
    """A stored rich-text value in the representation API `version` returns."""
    if value is None:
        return None
    if version >= 3:
        return value if is_document(value) else from_text(str(value))
    return to_text(value) if is_document(value) else value
