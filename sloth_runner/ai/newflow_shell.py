"""A subset of bash in GBNF, for the shell commands a local model writes in a workflow spec.

Why: `bash -n` rejects much of what a small model writes in a free string (an unclosed quote, a
`<placeholder>`, "run tests (unit)"), and each rejection costs a whole attempt. Under this
grammar the command is one line of simple commands joined by `&&`, `||`, `;` and `|`; words are
plain characters, quoted strings (closed), `$NAME`, `${NAME}` and `$(command)`; redirections are
`>`, `>>`, `2>`, `<` and `2>&1`; and a command does not start with a reserved word (`if`, `do`,
`done`, ...), which would open a compound command the line never closes. Everything it accepts
passes `bash -n` (tests/ai/test_ai_new.py checks samples of it). Models without a grammar are
checked with `bash -n` afterwards instead.

Inside the spec the command is a JSON string, so a double quote is written `\\"`; backslashes
are left out altogether.
"""

from __future__ import annotations

RESERVED = ("if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while",
            "until", "do", "done", "function", "in", "time", "coproc")
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@%+,~^-"


def _char_class(chars: str) -> str:
    """`chars` as a GBNF class, runs of three or more consecutive characters as ranges."""
    codes = sorted({ord(c) for c in chars})
    parts, i = [], 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        run = [chr(c) for c in codes[i:j + 1]]
        parts.append(f"{_esc(run[0])}-{_esc(run[-1])}" if len(run) >= 3 else
                     "".join(_esc(c) for c in run))
        i = j + 1
    return f"[{''.join(parts)}]"


def _esc(c: str) -> str:
    return f"\\x{ord(c):02X}" if c in "]-^\\[" else c


def command_name_rules(prefix: str = "sh-name") -> dict[str, str]:
    """A first word: name characters, any word but a reserved one (the complement of a trie
    of the reserved words: at each prefix of one, either follow it, or leave it with another
    character, or stop where the prefix itself is not reserved)."""
    rules: dict[str, str] = {}
    rest = f'{_char_class(NAME_CHARS)}{{0,60}}'
    prefixes = sorted({w[:i] for w in RESERVED for i in range(len(w) + 1)})

    def rule(p: str) -> str:
        return prefix if not p else f"{prefix}-{p}"

    for p in prefixes:
        nexts = sorted({w[len(p)] for w in RESERVED if w.startswith(p) and len(w) > len(p)})
        others = "".join(c for c in NAME_CHARS if c not in nexts)
        alternatives = [f'"{c}" {rule(p + c)}' for c in nexts]
        alternatives.append(f"{_char_class(others)} {rest}")
        if p and p not in RESERVED:
            alternatives.append('""')
        rules[rule(p)] = " | ".join(alternatives)
    return rules


def rules() -> dict[str, str]:
    """The rules; `sh` is one command line (without the JSON string's quotes)."""
    out = {
        "sh": 'sh-pipe ((" && " | " || " | "; ") sh-pipe){0,5}',
        "sh-pipe": 'sh-simple (" | " sh-simple){0,3}',
        "sh-simple": '(sh-name | "[") (" " sh-arg){0,16}',
        "sh-arg": "sh-word | sh-redir",
        "sh-redir": '"2>&1" | ("2"? (">" | ">>") | "<") " "? sh-word',
        "sh-word": "sh-plain (sh-q sh-plain?){0,4} | (sh-q sh-plain?){1,5}",
        "sh-plain": "[A-Za-z0-9_./:=@%+,~^*?\\[\\]{}-]{1,80}",
        "sh-q": "sh-sq | sh-dq | sh-var | sh-subst",
        "sh-var": '"$" [A-Za-z_] [A-Za-z0-9_]{0,30} | "${" [A-Za-z_] [A-Za-z0-9_]{0,30} "}"',
        "sh-sq": "\"'\" [^'\"\\\\\\x7F\\x00-\\x1F]{0,120} \"'\"",
        "sh-dq": '"\\\\\\"" sh-dq-run? ((sh-var | sh-subst) sh-dq-run?){0,6} "\\\\\\""',
        "sh-dq-run": '[^"\\\\$`\\x7F\\x00-\\x1F]{1,100}',
        "sh-subst": '"$(" sh-pipe ")"',
    }
    out.update(command_name_rules())
    return out
