"""Find the builder calls of a Lua workflow file in its source text, and change them in place.

`sloth-runner tune --write` must change a task's `:timeout(...)`, `:retries(...)` or a
workflow's `max_parallel_tasks` and leave every other byte of the file as it was: comments,
spacing, quotes, line endings. So this works on the source text, with a real Lua 5.4 lexer
(short strings with escapes, long brackets `[==[ ]==]`, long comments, numbers), never with a
regular expression over the whole file, which would match inside a string or a comment.

On the token stream it recognises three shapes, and nothing more (it is not a Lua parser):
  - a fluent chain starting at a call of the global `task`: `task("x"):timeout("5s"):build()`;
  - a table constructor, with its top-level fields (`name = "x"`, `[k] = v`, or positional),
    split at commas outside brackets and outside `function … end` blocks;
  - a call `workflow.define("w", {...})` or `workflow.define("w")` with its fluent chain.
Anything else (a name or value computed at run time, a builder continued in another statement)
is left to the caller to report as not safely rewritable.

Offsets are indices into the decoded text; `apply` splices replacements into it.
"""

from __future__ import annotations

import re

NAME, STRING, NUMBER, OP = "name", "string", "number", "op"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(
    r"0[xX](?:[0-9a-fA-F]*\.?[0-9a-fA-F]*)(?:[pP][+-]?[0-9]+)?"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LONG_OPEN = re.compile(r"\[(=*)\[")
_OPS3 = ("...",)
_OPS2 = ("..", "==", "~=", "<=", ">=", "<<", ">>", "//", "::")
_OPENS = {"(": ")", "{": "}", "[": "]"}
# keywords that open a block closed by `end` (`while`/`for` open theirs with `do`)
_BLOCK_OPEN = frozenset(("function", "if", "do", "repeat"))
_BLOCK_CLOSE = frozenset(("end", "until"))
_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34,
            "'": 39, "\n": 10, "\r": 10}


class LuaSyntaxError(ValueError):
    """The text is not what the lexer expected (it should not happen for a file that loads)."""


class Token:
    __slots__ = ("kind", "start", "end", "line", "text", "value")

    def __init__(self, kind: str, start: int, end: int, line: int, text: str,
                 value: str | None = None) -> None:
        self.kind = kind
        self.start = start
        self.end = end
        self.line = line
        self.text = text
        self.value = value  # a string literal's value

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.text!r}, line {self.line})"


def tokenize(src: str) -> list[Token]:
    """Lua 5.4 tokens, comments and whitespace dropped; a first line `#!...` is a comment."""
    tokens: list[Token] = []
    pos, line, n = 0, 1, len(src)
    if src.startswith("#!"):
        pos = _line_end(src, 0)
    while pos < n:
        c = src[pos]
        if c == "\n":
            line += 1
            pos += 1
        elif c in " \t\r\f\v":
            pos += 1
        elif src.startswith("--", pos):
            long = _LONG_OPEN.match(src, pos + 2)
            if long:
                end = _long_end(src, long.end(), len(long.group(1)), line)
                line += src.count("\n", pos, end)
                pos = end
            else:
                pos = _line_end(src, pos)
        elif c == "[" and _LONG_OPEN.match(src, pos):
            long = _LONG_OPEN.match(src, pos)
            assert long is not None
            end = _long_end(src, long.end(), len(long.group(1)), line)
            body = src[long.end():end - len(long.group(0))]
            if body[:2] in ("\r\n", "\n\r"):
                body = body[2:]
            elif body[:1] in ("\r", "\n"):
                body = body[1:]
            tokens.append(Token(STRING, pos, end, line, src[pos:end], body))
            line += src.count("\n", pos, end)
            pos = end
        elif c in "\"'":
            end = _short_end(src, pos, line)
            tokens.append(Token(STRING, pos, end, line, src[pos:end], _unescape(src[pos + 1:end - 1])))
            line += src.count("\n", pos, end)
            pos = end
        elif c.isdigit() or (c == "." and src[pos + 1:pos + 2].isdigit()):
            m = _NUMBER_RE.match(src, pos)
            assert m is not None
            tokens.append(Token(NUMBER, pos, m.end(), line, m.group(0)))
            pos = m.end()
        elif c.isalpha() or c == "_":
            m = _NAME_RE.match(src, pos)
            if m is None:  # a non-ASCII letter: Lua itself would not have loaded this
                raise LuaSyntaxError(f"line {line}: unexpected character {c!r}")
            tokens.append(Token(NAME, pos, m.end(), line, m.group(0)))
            pos = m.end()
        else:
            for op in _OPS3 + _OPS2:
                if src.startswith(op, pos):
                    break
            else:
                op = c
            tokens.append(Token(OP, pos, pos + len(op), line, op))
            pos += len(op)
    return tokens


def _line_end(src: str, pos: int) -> int:
    end = src.find("\n", pos)
    return len(src) if end < 0 else end


def _long_end(src: str, body: int, level: int, line: int) -> int:
    close = "]" + "=" * level + "]"
    end = src.find(close, body)
    if end < 0:
        raise LuaSyntaxError(f"line {line}: unfinished long string or comment")
    return end + len(close)


def _short_end(src: str, pos: int, line: int) -> int:
    quote, i, n = src[pos], pos + 1, len(src)
    while i < n:
        c = src[i]
        if c == "\\":
            e = src[i + 1:i + 2]
            i += 2
            if e == "z":  # \z skips the whitespace after it, newlines included
                while i < n and src[i] in " \t\r\n\f\v":
                    i += 1
            elif e in ("\r", "\n") and src[i:i + 1] in ("\r", "\n") and src[i] != e:
                i += 1  # an escaped \r\n or \n\r is one line break
            continue
        if c == quote:
            return i + 1
        if c == "\n":
            break
        i += 1
    raise LuaSyntaxError(f"line {line}: unfinished string")


def _unescape(body: str) -> str:
    """A short string's value, as Lua reads it (bytes, decoded as UTF-8 where they are)."""
    if "\\" not in body:
        return body
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        e = body[i + 1:i + 2]
        i += 2
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            if e in "\r\n" and body[i:i + 1] in "\r\n" and body[i:i + 1] != e:
                i += 1  # \ followed by \r\n or \n\r is one newline
        elif e == "x":
            out.append(int(body[i:i + 2], 16))
            i += 2
        elif e == "z":
            while i < n and body[i] in " \t\r\n\f\v":
                i += 1
        elif e.isdigit():
            m = re.match(r"[0-9]{1,3}", body[i - 1:])
            assert m is not None
            out.append(int(m.group(0)) & 0xFF)
            i += len(m.group(0)) - 1
        elif e == "u":
            close = body.index("}", i)
            out += chr(int(body[i + 1:close], 16)).encode("utf-8", "surrogatepass")
            i = close + 1
        else:
            raise LuaSyntaxError(f"invalid escape \\{e}")
    return out.decode("utf-8", "surrogateescape")


# -- structure ------------------------------------------------------------------------------------

class Call:
    """One `:method args` of a chain: its name token and its argument tokens' span."""

    __slots__ = ("method", "at", "open", "close")

    def __init__(self, method: str, at: int, open_: int, close: int) -> None:
        self.method = method
        self.at = at        # index of the method's name token
        self.open = open_   # index of '(' / '{' / the string token
        self.close = close  # index of ')' / '}' / the string token


class Chain:
    """`head(args):m1(...):m2(...)`: the head call's span and the method calls that follow."""

    __slots__ = ("head", "args_open", "args_close", "name", "calls")

    def __init__(self, head: int, args_open: int, args_close: int, name: str | None,
                 calls: list[Call]) -> None:
        self.head = head
        self.args_open = args_open
        self.args_close = args_close
        self.name = name    # the first argument, when it is a string literal
        self.calls = calls

    def last(self, method: str) -> Call | None:
        found = [c for c in self.calls if c.method == method]
        return found[-1] if found else None


class Field:
    __slots__ = ("key", "start", "value_start", "value_end", "sep")

    def __init__(self, key: str | None, start: int, value_start: int, value_end: int,
                 sep: int | None) -> None:
        self.key = key                  # a name or a string-literal key; None if positional
        self.start = start              # index of the field's first token
        self.value_start = value_start  # value tokens: [value_start, value_end)
        self.value_end = value_end
        self.sep = sep                  # index of the ',' or ';' after it, if any


class Table:
    __slots__ = ("open", "close", "fields")

    def __init__(self, open_: int, close: int, fields: list[Field]) -> None:
        self.open = open_
        self.close = close
        self.fields = fields

    def last(self, key: str) -> Field | None:
        found = [f for f in self.fields if f.key == key]
        return found[-1] if found else None  # the last assignment wins in Lua


class Source:
    """A file's text, its tokens, and the shapes found in them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self._close = _matching(self.tokens)
        self.tables = {i: self._table(i) for i, t in enumerate(self.tokens)
                       if t.kind == OP and t.text == "{"}

    # helpers over tokens
    def tok(self, i: int) -> Token | None:
        return self.tokens[i] if 0 <= i < len(self.tokens) else None

    def is_op(self, i: int, text: str) -> bool:
        t = self.tok(i)
        return t is not None and t.kind == OP and t.text == text

    def close_of(self, i: int) -> int:
        return self._close[i]

    def single_literal(self, start: int, end: int, kinds: tuple[str, ...] = (STRING, NUMBER)
                       ) -> Token | None:
        """The one token of [start, end) if it is a literal of those kinds (else None)."""
        if end - start == 1 and self.tokens[start].kind in kinds:
            return self.tokens[start]
        return None

    def table_at(self, start: int, end: int) -> Table | None:
        """The table constructor that [start, end) is exactly, if it is one."""
        if self.is_op(start, "{") and self._close[start] == end - 1:
            return self.tables[start]
        return None

    # shapes
    def chains(self, head: str) -> list[Chain]:
        """Every call of the global `head` (`task`) with the method chain that follows it."""
        out = []
        for i, t in enumerate(self.tokens):
            if t.kind != NAME or t.text != head:
                continue
            before = self.tok(i - 1)
            if before is not None and (before.text in (".", ":", "function") or
                                       (before.kind == NAME and before.text == "local")):
                continue
            chain = self._chain_at(i, i + 1)
            if chain is not None:
                out.append(chain)
        return out

    def workflow_defines(self) -> list[Chain]:
        """`workflow.define(...)` calls, each with its chain; `name` is the literal name."""
        out = []
        for i, t in enumerate(self.tokens):
            if t.kind == NAME and t.text == "workflow" and self.is_op(i + 1, ".") and \
                    (nxt := self.tok(i + 2)) is not None and nxt.text == "define" and \
                    not self.is_op(i - 1, ".") and not self.is_op(i - 1, ":"):
                chain = self._chain_at(i, i + 3)
                if chain is not None:
                    out.append(chain)
        return out

    def args(self, open_: int, close: int) -> list[tuple[int, int]]:
        """The arguments of a call whose argument list is tokens[open_..close], as spans."""
        if open_ == close or not self.is_op(open_, "("):  # f"str" or f{...}: one argument
            return [(open_, close + 1)]
        spans, start = [], open_ + 1
        for i in self._top_level(open_ + 1, close):
            if self.is_op(i, ","):
                spans.append((start, i))
                start = i + 1
        if start < close:
            spans.append((start, close))
        return spans

    def _chain_at(self, head: int, args: int) -> Chain | None:
        span = self._call_args(args)
        if span is None:
            return None
        open_, close = span
        arguments = self.args(open_, close)
        name = None
        if arguments:
            literal = self.single_literal(*arguments[0], kinds=(STRING,))
            name = literal.value if literal is not None else None
        calls = []
        i = close + 1
        while self.is_op(i, ":") and (method := self.tok(i + 1)) is not None and \
                method.kind == NAME:
            span = self._call_args(i + 2)
            if span is None:
                break
            calls.append(Call(method.text, i + 1, span[0], span[1]))
            i = span[1] + 1
        return Chain(head, open_, close, name, calls)

    def _call_args(self, i: int) -> tuple[int, int] | None:
        t = self.tok(i)
        if t is None:
            return None
        if t.kind == STRING:
            return i, i
        if t.kind == OP and t.text in ("(", "{"):
            return i, self._close[i]
        return None

    def _top_level(self, start: int, end: int) -> list[int]:
        """Indices in [start, end) outside nested brackets and `function … end` blocks."""
        out, i, blocks = [], start, 0
        while i < end:
            t = self.tokens[i]
            if t.kind == OP and t.text in _OPENS:
                i = self._close[i] + 1
                continue
            if t.kind == NAME:
                if t.text in _BLOCK_OPEN:
                    blocks += 1
                elif t.text in _BLOCK_CLOSE:
                    blocks -= 1
            if blocks == 0:
                out.append(i)
            i += 1
        return out

    def _table(self, open_: int) -> Table:
        close = self._close[open_]
        fields: list[Field] = []
        start = open_ + 1
        seps = [i for i in self._top_level(open_ + 1, close) if self.tokens[i].text in (",", ";")
                and self.tokens[i].kind == OP]
        for end in seps + [close]:
            if end > start:
                fields.append(self._field(start, end, end if end != close else None))
            start = end + 1
        return Table(open_, close, fields)

    def _field(self, start: int, end: int, sep: int | None) -> Field:
        first = self.tokens[start]
        if first.kind == NAME and self.is_op(start + 1, "="):
            return Field(first.text, start, start + 2, end, sep)
        if first.kind == OP and first.text == "[":
            close = self._close[start]
            if self.is_op(close + 1, "="):
                literal = self.single_literal(start + 1, close, kinds=(STRING,))
                return Field(literal.value if literal else None, start, close + 2, end, sep)
        return Field(None, start, start, end, sep)


def _matching(tokens: list[Token]) -> dict[int, int]:
    """Index of each opening bracket's closing bracket (and of each closing one's opener)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for i, t in enumerate(tokens):
        if t.kind != OP:
            continue
        if t.text in _OPENS:
            stack.append(i)
        elif t.text in (")", "}", "]"):
            if not stack or _OPENS[tokens[stack[-1]].text] != t.text:
                raise LuaSyntaxError(f"line {t.line}: unbalanced {t.text!r}")
            j = stack.pop()
            pairs[j], pairs[i] = i, j
    if stack:
        raise LuaSyntaxError(f"line {tokens[stack[-1]].line}: unclosed {tokens[stack[-1]].text!r}")
    return pairs


# -- edits ----------------------------------------------------------------------------------------

class Edit:
    """Replace text[start:end] with `text` (an insertion when start == end)."""

    __slots__ = ("start", "end", "text")

    def __init__(self, start: int, end: int, text: str) -> None:
        self.start = start
        self.end = end
        self.text = text

    def __repr__(self) -> str:
        return f"Edit({self.start}, {self.end}, {self.text!r})"


def apply(text: str, edits: list[Edit]) -> str:
    """`text` with the edits made; they must not overlap (insertions at one point are kept
    in the order given)."""
    ordered = sorted(enumerate(edits), key=lambda ie: (ie[1].start, ie[1].end, ie[0]))
    out, pos = [], 0
    for _, e in ordered:
        if e.start < pos:
            raise ValueError(f"overlapping edits at offset {e.start}")
        out.append(text[pos:e.start])
        out.append(e.text)
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


def lua_string(value: str, like: Token | None = None) -> str:
    """`value` as a Lua string literal, quoted as `like` was if it was a short string."""
    quote = like.text[0] if like is not None and like.kind == STRING and \
        like.text[0] in "\"'" else '"'
    escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return f"{quote}{escaped}{quote}"


def insert_fields(src: Source, table: Table, text: str, before: Field | None = None) -> Edit:
    """An edit adding `text` (`a = 1` or `a = 1, b = 2`) as fields of `table`, just before
    the field `before` (default: the first), keeping the table's layout: when that field
    starts a line of its own, the new fields get a line of their own, with its indentation
    and its line ending."""
    tokens = src.tokens
    if not table.fields:  # `{}`: fill it
        return Edit(tokens[table.open].end, tokens[table.open].end, text)
    at = tokens[(before or table.fields[0]).start]
    previous = tokens[(before or table.fields[0]).start - 1]  # `{`, or the separator before
    if previous.line != at.line:
        line_start = src.text.rfind("\n", 0, at.start) + 1
        indent = src.text[line_start:at.start]
        if not indent.strip():
            eol = "\r\n" if src.text[line_start - 2:line_start] == "\r\n" else "\n"
            return Edit(at.start, at.start, f"{text},{eol}{indent}")
    return Edit(at.start, at.start, f"{text}, ")


def describe(src: Source, start: int, end: int) -> str:
    """The source text of tokens [start, end), for messages."""
    if end <= start:
        return ""
    return src.text[src.tokens[start].start:src.tokens[end - 1].end]
