"""One small lexer for pseudocode and C++ lines: strings, chars, numbers, identifiers, operators."""

from __future__ import annotations

import re

TOKEN = re.compile(
    r'"(?:\\.|[^"\\])*"?'  # string literal (an unclosed one runs to the end)
    r"|'(?:\\.|[^'\\])*'?"  # char literal
    r"|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?[A-Za-z]*|\.\d+"  # number with optional suffix (1e9, 10LL)
    r"|[A-Za-z_]\w*"
    r"|<<=|>>=|<<|>>|\+\+|--|->|==|!=|<=|>=|&&|\|\||\+=|-=|\*=|/=|%=|&=|\|=|\^=|::"
    r"|\S"
)
IDENT = re.compile(r"[A-Za-z_]\w*\Z")


def tokens(line: str) -> list[str]:
    return TOKEN.findall(line)


def spans(line: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in TOKEN.finditer(line)]


def is_literal(token: str) -> bool:
    return token[:1] in "\"'" or token[:1].isdigit() or (token[:1] == "." and token[1:2].isdigit())


def is_identifier(token: str) -> bool:
    return bool(IDENT.match(token))


def canonical(code: str) -> tuple[str, ...]:
    """Token sequence used to compare code lines (whitespace and braces around the line ignored)."""
    core = code.strip()
    if core.endswith("{") and not core.endswith(("'{", '"{')):
        core = core[:-1]
    core = core.strip()
    while core.startswith("}"):
        core = core[1:].lstrip()
    return tuple(tokens(core))


def detokenize(toks: list[str]) -> str:
    """Join tokens with spaces (literals stay whole, so the result lexes back to the same tokens)."""
    return " ".join(toks)
