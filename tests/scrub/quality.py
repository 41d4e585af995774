"""Recall and precision of the scrubber on the labelled corpus, per planted kind and overall.

A planted secret counts as caught when one finding covers all of it. A finding is a true
positive when it overlaps a planted secret; anything else (hard negatives included) is a false
positive. Used by the test (targets) and by `python -m tests.scrub.quality` (a report).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sloth_runner.scrub import Scrubber

CORPUS = Path(__file__).with_name("corpus.jsonl")


def evaluate(scrubber: Scrubber | None = None) -> dict:
    scrubber = scrubber or Scrubber()
    planted, caught = Counter(), Counter()
    by_detector_tp, by_detector_fp = Counter(), Counter()
    misses, false_positives = [], []
    for line in CORPUS.read_text().splitlines():
        entry = json.loads(line)
        text = entry["text"]
        spans = []
        for secret in entry["secrets"]:
            start = text.find(secret["value"])
            spans.append((start, start + len(secret["value"]), secret["type"]))
        findings = scrubber.scan(text)
        for start, end, kind in spans:
            planted[kind] += 1
            if any(f.start <= start and f.end >= end for f in findings):
                caught[kind] += 1
            else:
                misses.append((kind, text))
        for f in findings:
            if any(f.start < end and f.end > start for start, end, _ in spans):
                by_detector_tp[f.type] += 1
            else:
                by_detector_fp[f.type] += 1
                false_positives.append((f.type, text[f.start:f.end], text))
    tp, fp = sum(by_detector_tp.values()), sum(by_detector_fp.values())
    return {
        "recall": sum(caught.values()) / sum(planted.values()),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall_by_kind": {k: caught[k] / planted[k] for k in sorted(planted)},
        "precision_by_detector": {d: by_detector_tp[d] / (by_detector_tp[d] + by_detector_fp[d])
                                  for d in sorted(by_detector_tp | by_detector_fp)},
        "misses": misses, "false_positives": false_positives,
        "planted": sum(planted.values()), "findings": tp + fp,
    }


if __name__ == "__main__":
    r = evaluate()
    print(f"overall: recall {r['recall']:.3f}, precision {r['precision']:.3f} "
          f"({r['planted']} planted secrets, {r['findings']} findings)")
    print("recall by planted kind:")
    for k, v in r["recall_by_kind"].items():
        print(f"  {k:<20} {v:.3f}")
    print("precision by detector:")
    for k, v in r["precision_by_detector"].items():
        print(f"  {k:<20} {v:.3f}")
    for kind, text in r["misses"][:15]:
        print("MISS", kind, repr(text[:140]))
    for kind, value, text in r["false_positives"][:15]:
        print("FP  ", kind, repr(value[:60]), "in", repr(text[:100]))
