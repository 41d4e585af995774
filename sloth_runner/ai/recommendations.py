"""`ai.parse_recommendations`: a model's free-text infrastructure advice as records a workflow
can act on: `{type, resource, new_size, current_size, confidence, estimated_savings, text}`.

Parsing, not generation: every field is read from the text, none is made up. A recommendation
that states no confidence gets 0, so a rule like `rec.confidence > 0.8` never auto-applies
advice the model did not vouch for. Types: scale_down, scale_up, terminate, schedule, reserve,
storage, other.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ITEM_START = re.compile(r"^\s*(?:[-*•]|\d+[.)]|#+)\s+")
INSTANCE_TYPE = re.compile(r"\b(?:db\.|cache\.)?[a-z]{1,3}\d[a-z0-9-]*\."
                           r"(?:nano|micro|small|medium|large|metal|\d*xlarge)\b")
RESOURCE_ID = re.compile(r"\b(?:i|vol|sg|subnet|vpc|eni|snap|ami|nat|eipalloc)-[0-9a-f]{8,17}\b"
                         r"|\barn:aws[\w-]*:[^\s,;)]+")
CONFIDENCE = re.compile(r"confidence\W{0,3}(?:of\s+|is\s+)?(\d{1,3}(?:\.\d+)?\s*%|[01](?:\.\d+)?)"
                        r"|\((\d{1,3})\s*%\s*(?:confiden|sure|certain)", re.I)
SAVINGS = re.compile(r"(?:sav\w*|reduc\w*|cut)\D{0,40}?\$\s?([\d,]+(?:\.\d+)?)"
                     r"|\$\s?([\d,]+(?:\.\d+)?)(?:\s*(?:/|per)\s*\w+)?\D{0,20}sav", re.I)
TYPES = [
    ("scale_down", r"\b(?:scale|size)[- ]?down|\bdownsiz|\bright-?siz|\bsmaller\b"
                   r"|\breduce (?:the )?(?:instance|size|capacity|class)"),
    ("scale_up", r"\b(?:scale|size)[- ]?up\b|\bupsiz|\blarger\b|\bmore (?:capacity|memory|cpu)"
                 r"|\bincrease (?:the )?(?:instance|size|capacity|class)|\badd (?:a )?replica"),
    ("terminate", r"\bterminat|\bdecommission|\bdelete\b|\bremove (?:the )?(?:unused|idle)"),
    ("schedule", r"\bschedul|\boff[- ]hours|\bnights? and weekends?"),
    ("reserve", r"\breserved instance|\bsavings plan|\bcommit(?:ment|ted)? (?:plan|use)"),
    ("storage", r"\bgp2\b|\bgp3\b|\bebs\b|\bsnapshots?\b|\bs3\b|\bstorage"),
]
SIZES = ["nano", "micro", "small", "medium", "large", "xlarge"]


def parse_recommendations(text: str, resources: list[str] | None = None) -> list[dict[str, Any]]:
    """One record per bullet or numbered item (or per line when the text has no list).
    `resources` names the workflow knows (an RDS identifier, say) to recognise in the text."""
    return [_record(item, resources or []) for item in _items(text)]


def _items(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    if not any(ITEM_START.match(line) for line in lines):
        return [line.strip() for line in lines if line.strip()]
    items: list[str] = []
    for line in lines:
        if ITEM_START.match(line):
            items.append(ITEM_START.sub("", line, count=1).strip())
        elif line.strip() and items and line[:1].isspace():
            items[-1] += " " + line.strip()  # a continuation of the item above
    return [item for item in items if item]


def _record(item: str, known: list[str]) -> dict[str, Any]:
    kind = next((name for name, pattern in TYPES if re.search(pattern, item, re.I)), "other")
    sizes = INSTANCE_TYPE.findall(item)
    target = re.search(r"\bto\s+(?:an?\s+)?`?(" + INSTANCE_TYPE.pattern + ")", item)
    new_size = target.group(1) if target else (sizes[-1] if sizes else None)
    current = next((s for s in sizes if s != new_size), None)
    if kind == "other" and current and new_size:
        kind = "scale_down" if _rank(new_size) < _rank(current) else "scale_up"
    resource_match = RESOURCE_ID.search(item)
    resource = resource_match.group(0) if resource_match else \
        next((name for name in known if re.search(rf"\b{re.escape(name)}\b", item)), None)
    return {"type": kind, "resource": resource, "new_size": new_size, "current_size": current,
            "confidence": _confidence(item), "estimated_savings": _savings(item), "text": item}


def _rank(instance_type: str) -> tuple[int, int]:
    size = instance_type.rsplit(".", 1)[-1]
    if size.endswith("xlarge"):
        return (SIZES.index("xlarge"), int(size[:-6] or 1))
    return (SIZES.index(size) if size in SIZES else len(SIZES), 0)


def _confidence(item: str) -> float:
    found = CONFIDENCE.search(item)
    if not found:
        return 0.0
    raw = (found.group(1) or found.group(2) + "%").replace(" ", "")
    value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    return min(max(value, 0.0), 1.0)


def _savings(item: str) -> float | None:
    found = SAVINGS.search(item)
    if not found:
        return None
    return float((found.group(1) or found.group(2)).replace(",", ""))
