"""Scrubbing speed (issue 4): MB/s on realistic mixed logs, linearity, adversarial inputs, and
detect-secrets on the same data in the same run (bench-only dependency).

    python bench/scrub.py [--mb 16]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sloth_runner.scrub import Scrubber  # noqa: E402
from tests.scrub import make_corpus  # noqa: E402

PLANTED: list[str] = []


def realistic(megabytes: float, seed: int = 1) -> str:
    """Application logs, YAML, JSON, diffs and shell lines; about 1 line in 200 has a secret
    (recorded in PLANTED)."""
    PLANTED.clear()
    rng = random.Random(seed)
    make_corpus.R.seed(seed)
    kinds = sorted(make_corpus.TEMPLATES)
    lines: list[str] = []
    size = 0
    i = 0
    while size < megabytes * 1e6:
        i += 1
        r = rng.random()
        if r < 0.005:
            kind = rng.choice(kinds)
            value = make_corpus.GENERATORS[kind]()
            PLANTED.append(value)
            line = rng.choice(make_corpus.TEMPLATES[kind]).format(v=value)
        elif r < 0.05:
            line = rng.choice(make_corpus.HARD_NEGATIVES)()
        elif r < 0.75:
            line = (f"2026-11-25T10:{i % 60:02}:{i % 60:02}.{i % 1000:03}Z "
                    f"{rng.choice(['INFO', 'WARN', 'DEBUG', 'ERROR'])} "
                    f"{rng.choice(make_corpus.WORDS)}-{i % 16} request_id={rng.getrandbits(64):016x} "
                    f"path=/api/v1/items/{i} status={rng.choice([200, 201, 404, 500])} "
                    f"duration={rng.randint(1, 900)}ms")
        elif r < 0.85:
            line = f"  {rng.choice(make_corpus.WORDS)}: {rng.choice(['true', 'false', i, 'app'])}"
        elif r < 0.95:
            line = (f'{{"level": "info", "msg": "{rng.choice(make_corpus.WORDS)} done", '
                    f'"items": {i}, "elapsed_ms": {rng.randint(1, 999)}}}')
        else:
            line = f"+    image: registry.local/{rng.choice(make_corpus.WORDS)}:{i % 40}.{i % 7}"
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def detect_secrets_rate(text: str) -> float:
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as fh:
        fh.write(text)
    try:
        with default_settings():
            collection = SecretsCollection()
            seconds = timed(collection.scan_file, fh.name)
    finally:
        os.unlink(fh.name)
    return len(text) / 1e6 / seconds


def quality() -> None:
    from tests.scrub.quality import evaluate

    r = evaluate()
    print(f"Labelled corpus: recall {r['recall']:.3f}, precision {r['precision']:.3f} "
          f"({r['planted']} planted secrets, {r['findings']} findings)\n")
    print("| detector | precision | planted kind | recall |")
    print("|---|---|---|---|")
    kinds = list(r["recall_by_kind"].items())
    dets = list(r["precision_by_detector"].items())
    for i in range(max(len(kinds), len(dets))):
        d, p = dets[i] if i < len(dets) else ("", None)
        k, rc = kinds[i] if i < len(kinds) else ("", None)
        print(f"| {d} | {'' if p is None else f'{p:.3f}'} | {k} | "
              f"{'' if rc is None else f'{rc:.3f}'} |")
    print()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=16)
    ap.add_argument("--compare-mb", type=float, default=2)
    args = ap.parse_args()
    quality()
    from sloth_runner.scrub.engine import select
    from sloth_runner.scrub.fastfind import make_finder

    engine_name = "Hyperscan candidate pass" if make_finder(select("all")) else "portable str.find"
    print(f"Scrubber speed, one core ({engine_name}):\n")
    print("| input | size | time | throughput |")
    print("|---|---|---|---|")
    for mb in (1, 4, args.mb):
        text = realistic(mb)
        best = min(timed(Scrubber().scrub, text) for _ in range(3))
        print(f"| realistic logs | {len(text) / 1e6:.1f} MB | {best:.3f} s | "
              f"{len(text) / 1e6 / best:.1f} MB/s |")
    text = realistic(4)
    findings = Scrubber().scan(text)
    spans = []
    for value in PLANTED:
        start = text.find(value)
        spans.append((start, start + len(value)))
    caught = sum(any(f.start <= s and f.end >= e for f in findings) for s, e in spans)
    stray = sum(not any(f.start < e and f.end > s for s, e in spans) for f in findings)
    print(f"\nOn the 4 MB realistic log: {caught}/{len(spans)} planted secrets caught, "
          f"{stray} findings that were not planted (of {len(findings)}).")
    text = realistic(args.compare_mb)
    ours = len(text) / 1e6 / min(timed(Scrubber().scrub, text) for _ in range(3))
    try:
        theirs = detect_secrets_rate(text)
        print(f"\n| same {args.compare_mb:g} MB, same run | sloth-runner {ours:.1f} MB/s | "
              f"detect-secrets {theirs:.2f} MB/s | {ours / theirs:.0f}× |")
    except ImportError:
        print("\n(detect-secrets not installed: pip install detect-secrets)")
    print("\n| adversarial 1 MB input | time |")
    print("|---|---|")
    cases = {
        "one repeated character": "a" * 1_000_000,
        "`=` repeated": "=" * 1_000_000,
        "base64": "QUJDRGVmZ2hpams0NTY3" * 50_000,
        "one 1 MB line, `password=` then one value": "password=" + "x" * 1_000_000,
        "digits": "1" * 1_000_000,
        "`a1:` repeated (IPv6-like)": "a1:" * 333_333,
        "`1.` repeated (IPv4-like)": "1." * 500_000,
    }
    for name, text in cases.items():
        print(f"| {name} | {timed(Scrubber().scrub, text):.3f} s |")
    streaming()
    return 0


def streaming() -> None:
    """Scrubbing a model's stream as it comes (Scrubber.stream): cost per token, and how much
    text is held back (what the reader waits for)."""
    import statistics

    make_corpus.R.seed(5)
    prose = ("To roll out the new version, build the image, push it to the registry and run "
             "kubectl rollout restart deploy/api. Watch the pods, and if more than two restart "
             "within five minutes, roll back. Set DB_PASSWORD=" + make_corpus.password() +
             " in the secret, and mail ops@example.com when done.\n") * 40
    tokens = [w + " " for w in prose.split(" ")]
    rows = []
    for label, pieces in (("word tokens", tokens),
                          ("4-character tokens", [prose[i:i + 4]
                                                  for i in range(0, len(prose), 4)])):
        stream = Scrubber().stream()
        costs, held = [], []
        for piece in pieces:
            t = time.perf_counter()
            stream.feed(piece)
            costs.append(time.perf_counter() - t)
            held.append(len(stream.held))
        stream.flush()
        rows.append((label, len(pieces), statistics.median(costs) * 1e6,
                     max(costs) * 1e6, statistics.median(held), max(held)))
    print("\n| streamed scrubbing | tokens | median per feed | worst feed | held back: "
          "median | max |")
    print("|---|---|---|---|---|---|")
    for label, n, med, worst, hmed, hmax in rows:
        print(f"| {label} | {n} | {med:.0f} µs | {worst:.0f} µs | {hmed:.0f} chars | "
              f"{hmax} chars |")


if __name__ == "__main__":
    raise SystemExit(main())
