"""Images in chat messages: `content = {{type = "text", text = ...}, {type = "image", path =
"dash.png"}}` (or `url = "https://..."`, or `data` with `mime`), sent as OpenAI-style
`image_url` parts (a local file or data as a base64 `data:` URL), capped in size.

Only the text parts are scrubbed, estimated as tokens and logged; an image is logged as
`[image: name, N bytes]`. A text-only model (the local GGUF) refuses a message with an image
with an error naming the model, before anything is sent.
"""

from __future__ import annotations

import base64
import mimetypes
import os

from sloth_runner.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_IMAGE_BYTES = 8 * 1024 * 1024
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def content_parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A message's content as the request carries it: a string, or OpenAI-style parts.
    ConfigError (naming `where`) for a malformed part, a missing file, an image too big."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise ConfigError(where, "content must be a string or a list of {type = \"text\", "
                                 "text = ...} / {type = \"image\", path|url|data = ...} parts")
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content, 1):
        field = f"{where}.content[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image":
            parts.append(_image(part, field))
        else:
            raise ConfigError(field, "must be {type = \"text\", text = ...} or {type = "
                                     "\"image\", path = ... | url = ... | data = ..., mime = ...}")
    return parts


def _image(part: dict[str, Any], field: str) -> dict[str, Any]:
    if isinstance(part.get("url"), str):
        url = part["url"]
        if not url.startswith(("https://", "http://", "data:image/")):
            raise ConfigError(f"{field}.url", "must be an http(s) URL or a data:image/ URL")
        return {"type": "image_url", "image_url": {"url": url}, "_label": url[:80]}
    if isinstance(part.get("path"), str):
        path = os.path.expanduser(part["path"])
        mime = part.get("mime") or mimetypes.guess_type(path)[0]
        try:
            size = os.path.getsize(path)
            if size > MAX_IMAGE_BYTES:
                raise ConfigError(f"{field}.path", f"{path} is {size} bytes; images are capped "
                                                   f"at {MAX_IMAGE_BYTES // 1024 // 1024} MiB")
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise ConfigError(f"{field}.path", f"cannot read {path}: {exc.strerror}") from exc
        label = os.path.basename(path)
    elif isinstance(part.get("data"), str | bytes):
        data = part["data"]
        raw = data.encode("latin-1") if isinstance(data, str) else data
        mime, label = part.get("mime"), "data"
        if len(raw) > MAX_IMAGE_BYTES:
            raise ConfigError(f"{field}.data", f"{len(raw)} bytes; images are capped at "
                                               f"{MAX_IMAGE_BYTES // 1024 // 1024} MiB")
    else:
        raise ConfigError(field, "an image needs path, url or data (with mime)")
    if mime not in IMAGE_TYPES:
        raise ConfigError(f"{field}.mime", f"must be one of {', '.join(IMAGE_TYPES)} "
                                           f"(got {mime or 'nothing'})")
    url = f"data:{mime};base64,{base64.b64encode(raw).decode()}"
    return {"type": "image_url", "image_url": {"url": url}, "_label": f"{label}, {len(raw)} bytes"}


def has_images(messages: list[dict[str, Any]]) -> bool:
    return any(isinstance(m.get("content"), list) and
               any(p.get("type") == "image_url" for p in m["content"]) for m in messages)


def text_of(content: Any) -> str:
    """What a message says in text (images as a short label): for token estimates, cache
    keys and the call log."""
    if isinstance(content, str):
        return content
    return " ".join(p["text"] if p.get("type") == "text" else f"[image: {p.get('_label')}]"
                    for p in content)


def scrub_parts(content: Any, scrub: Any) -> Any:
    if isinstance(content, str):
        return scrub(content)
    return [{**p, "text": scrub(p["text"])} if p.get("type") == "text" else p for p in content]


def wire(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as sent: without our log labels."""
    if not has_images(messages):
        return messages
    return [{**m, "content": [{k: v for k, v in p.items() if k != "_label"}
                              for p in m["content"]]} if isinstance(m.get("content"), list)
            else m for m in messages]
