"""What a task's inputs and outputs looked like after its last success, keyed by task."""

from __future__ import annotations

import json
import time

from sloth_runner.store.db import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class FingerprintStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str) -> tuple[Any, Any] | None:
        rows = self.store.query("SELECT inputs_json, outputs_json FROM fingerprints WHERE key = ?",
                                (key,))
        return (json.loads(rows[0][0]), json.loads(rows[0][1])) if rows else None

    def put(self, key: str, inputs: Any, outputs: Any) -> None:
        with self.store.transaction() as c:
            c.execute("INSERT INTO fingerprints VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE "
                      "SET inputs_json = excluded.inputs_json, outputs_json = "
                      "excluded.outputs_json, updated_at = excluded.updated_at",
                      (key, json.dumps(inputs, sort_keys=True), json.dumps(outputs, sort_keys=True),
                       time.time()))
