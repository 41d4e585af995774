"""Streaming scrubber: secrets split over many pieces never come out, the output is exactly the
batch-scrubbed text, and plain prose is held back by no more than a word."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sloth_runner.scrub import Scrubber
from tests.scrub import make_corpus

KINDS = sorted(make_corpus.TEMPLATES)
API_KEY = "sk-test-SECRET-0123456789abcdefghij"


def stream_through(scrubber: Scrubber, pieces: list[str]) -> tuple[str, list[str]]:
    s = scrubber.stream()
    outputs = [s.feed(p) for p in pieces]
    outputs.append(s.flush())
    return "".join(outputs), outputs


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)]


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 10**9), template=st.integers(0, 50),
       before=st.text(alphabet=" \n\tabcdefghij.,:;", max_size=30),
       after=st.text(alphabet=" \n\tabcdefghij.,:;", max_size=30),
       cuts=st.lists(st.integers(0, 10**6), max_size=60))
def test_a_secret_split_over_pieces_never_comes_out_and_output_equals_batch(
        kind, seed, template, before, after, cuts):
    make_corpus.R.seed(seed)
    value = make_corpus.GENERATORS[kind]()
    templates = make_corpus.TEMPLATES[kind]
    text = before + "\n" + templates[template % len(templates)].format(v=value) + "\n" + after
    out, _ = stream_through(Scrubber(), split(text, cuts))
    assert value not in out
    assert out == Scrubber().scrub(text)[0]


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(0, 10**6), max_size=80), seed=st.integers(0, 10**9))
def test_many_secrets_and_the_known_key_in_one_stream(cuts, seed):
    make_corpus.R.seed(seed)
    values = [make_corpus.GENERATORS[k]() for k in ("password", "private_key", "jwt", "email")]
    text = (f"Here you go.\nDB_PASSWORD={values[0]}\n{values[1]}\nCookie: session={values[2]}"
            f"\nmail {values[3]} and use {API_KEY} as the key.")
    streaming, batch = Scrubber(known=[API_KEY]), Scrubber(known=[API_KEY])
    out, _ = stream_through(streaming, split(text, cuts))
    for v in [*values, API_KEY]:
        assert v not in out
    assert out == batch.scrub(text)[0]


def test_a_secret_one_character_at_a_time():
    key = "AKIAABCDEFGHIJKLMNOP"
    text = f"rotate {key} now, and the key {API_KEY[:20]} is not the whole {API_KEY}."
    out, outputs = stream_through(Scrubber(known=[API_KEY]), list(text))
    assert key not in out and API_KEY not in out
    for piece in outputs:  # no piece shows even a stretch of either secret
        assert key[4:12] not in piece and API_KEY[8:16] not in piece
    assert out == Scrubber(known=[API_KEY]).scrub(text)[0]


def test_placeholders_agree_with_the_run_and_restore():
    scrubber = Scrubber()
    first = scrubber.scrub("backup key AKIAIOSFODNN7EXAMPLE")[0]
    assert first == "backup key [REDACTED:aws_access_key:1]"
    out, _ = stream_through(scrubber, ["Use AKIAIOSF", "ODNN7EXAMPLE", " (see [REDACTED:aws_",
                                       "access_key:1])."])
    assert out == ("Use [REDACTED:aws_access_key:1] (see [REDACTED:aws_access_key:1]).")
    assert scrubber.restore(out) == "Use AKIAIOSFODNN7EXAMPLE (see AKIAIOSFODNN7EXAMPLE)."


PROSE = ("To roll out the new version, build the image, push it to the registry and run "
         "kubectl rollout restart deploy/api. Then watch the pods: if more than two restart "
         "within five minutes, roll back with kubectl rollout undo. Keep the old replica set "
         "for a day, and note the release in the changelog.\n\n```bash\nkubectl get pods -n "
         "prod\nkubectl logs deploy/api --tail=50\n```\n")


def test_prose_is_held_back_by_at_most_a_word():
    s = Scrubber().stream()
    words = PROSE.split(" ")
    pieces = [w + " " for w in words[:-1]] + [words[-1]]
    shown = 0
    for i, piece in enumerate(pieces):
        shown += len(s.feed(piece))
        seen = sum(len(p) for p in pieces[:i + 1])
        # at most the last piece (a word and its space) is still held
        assert seen - shown <= len(piece), (piece, s.held)
    assert shown + len(s.flush()) == len(PROSE)


def test_a_private_key_is_held_from_its_begin_line_until_its_end_line():
    make_corpus.R.seed(3)
    key = make_corpus.pem("RSA")
    s = Scrubber().stream()
    out = s.feed("Here is the key:\n")
    lines = key.split("\n")
    for line in lines[:-1]:
        out += s.feed(line + "\n")
        assert "-----BEGIN" not in out  # nothing of the block is shown before its END line
    out += s.feed(lines[-1] + "\nDone.") + s.flush()
    assert out == "Here is the key:\n[REDACTED:private_key:1]\nDone."
