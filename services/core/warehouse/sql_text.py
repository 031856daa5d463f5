"""Just enough ClickHouse SQL lexing to route statements, never to interpret them.

The engine parses and checks every statement itself; this module only answers questions the
HTTP endpoint and the migrations must settle *before* handing text to the engine: where one
statement ends, which output format a query asks for, and where the data of an
``INSERT ... FORMAT X`` begins in a request body.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

_WORD_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_WORD_PART = _WORD_START | frozenset("0123456789$")
_SPACE = frozenset(" \t\n\r\f\v")

# Statements whose answer is a result set (ClickHouse reports X-ClickHouse-Format for them).
_RESULT_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "CHECK", "KILL", "VALUES", "FROM"}
)


# Words that can follow a column called ``format``; never a format name.
_CLAUSE_WORDS = frozenset(
    {
        "FROM",
        "WHERE",
        "PREWHERE",
        "GROUP",
        "ORDER",
        "LIMIT",
        "OFFSET",
        "HAVING",
        "SETTINGS",
        "UNION",
        "EXCEPT",
        "INTERSECT",
        "AS",
        "AND",
        "OR",
        "WINDOW",
        "QUALIFY",
        "INTO",
        "FINAL",
        "SAMPLE",
        "ARRAY",
        "JOIN",
        "LEFT",
        "RIGHT",
        "INNER",
        "FULL",
        "CROSS",
        "GLOBAL",
        "ANY",
        "ALL",
        "ASOF",
        "SEMI",
        "ANTI",
        "IS",
        "IN",
        "NOT",
        "LIKE",
        "ILIKE",
        "BETWEEN",
        "DESC",
        "ASC",
    }
)


class Kind(enum.Enum):
    WORD = "word"
    QUOTED = "quoted"  # "identifier" or `identifier`
    STRING = "string"  # 'literal' or $$heredoc$$
    NUMBER = "number"
    PUNCT = "punct"
    UNTERMINATED = "unterminated"  # a string or comment cut off by the end of the text


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    start: int
    end: int
    depth: int  # bracket depth at the token

    def upper(self, text: str) -> str:
        return text[self.start : self.end].upper()


def _is_word_char(char: str) -> bool:
    return char in _WORD_PART or char >= "\x80"


def _skip_quoted(text: str, pos: int, quote: str) -> int:
    """Position after the closing quote, or -1 when the text ends first."""
    end = len(text)
    pos += 1
    while pos < end:
        char = text[pos]
        if char == "\\":
            pos += 2
            continue
        if char == quote:
            if pos + 1 < end and text[pos + 1] == quote:
                pos += 2
                continue
            return pos + 1
        pos += 1
    return -1


def _skip_block_comment(text: str, pos: int) -> int:
    depth = 0
    end = len(text)
    while pos < end:
        if text.startswith("/*", pos):
            depth += 1
            pos += 2
        elif text.startswith("*/", pos):
            depth -= 1
            pos += 2
            if depth == 0:
                return pos
        else:
            pos += 1
    return -1


def _skip_heredoc(text: str, pos: int) -> int:
    """``$tag$ ... $tag$``; -1 when unterminated, 0 when ``$`` does not open a heredoc."""
    close = text.find("$", pos + 1)
    if close < 0:
        return -1
    tag = text[pos : close + 1]
    if not all(_is_word_char(c) for c in tag[1:-1]):
        return 0
    found = text.find(tag, close + 1)
    return -1 if found < 0 else found + len(tag)


def tokens(text: str, start: int = 0) -> Iterator[Token]:
    """Significant tokens (no whitespace, no comments) with their bracket depth."""
    pos = start
    end = len(text)
    depth = 0
    while pos < end:
        char = text[pos]
        if char in _SPACE:
            pos += 1
            continue
        if text.startswith("--", pos) or (char == "#" and text[pos + 1 : pos + 2] in (" ", "!")):
            newline = text.find("\n", pos)
            if newline < 0:
                return
            pos = newline + 1
            continue
        if text.startswith("/*", pos):
            after = _skip_block_comment(text, pos)
            if after < 0:
                yield Token(Kind.UNTERMINATED, pos, end, depth)
                return
            pos = after
            continue
        if char in "'\"`":
            after = _skip_quoted(text, pos, char)
            if after < 0:
                yield Token(Kind.UNTERMINATED, pos, end, depth)
                return
            yield Token(Kind.STRING if char == "'" else Kind.QUOTED, pos, after, depth)
            pos = after
            continue
        if char == "$":
            after = _skip_heredoc(text, pos)
            if after < 0:
                yield Token(Kind.UNTERMINATED, pos, end, depth)
                return
            if after > 0:
                yield Token(Kind.STRING, pos, after, depth)
                pos = after
                continue
        if char in _WORD_START or char >= "\x80":
            after = pos + 1
            while after < end and _is_word_char(text[after]):
                after += 1
            yield Token(Kind.WORD, pos, after, depth)
            pos = after
            continue
        if char.isdigit():
            after = pos + 1
            while after < end and (text[after].isalnum() or text[after] in "._"):
                after += 1
            yield Token(Kind.NUMBER, pos, after, depth)
            pos = after
            continue
        if char in "([{":
            yield Token(Kind.PUNCT, pos, pos + 1, depth)
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
            yield Token(Kind.PUNCT, pos, pos + 1, depth)
        else:
            yield Token(Kind.PUNCT, pos, pos + 1, depth)
        pos += 1


def split_statements(text: str) -> list[str]:
    """Statements separated by top-level ``;`` (comments and blank pieces dropped)."""
    statements: list[str] = []
    piece_start = 0
    seen_token = False
    for token in tokens(text):
        if token.kind is Kind.PUNCT and text[token.start] == ";":
            if seen_token:
                statements.append(text[piece_start : token.start].strip())
            piece_start = token.end
            seen_token = False
        else:
            seen_token = True
    if seen_token:
        statements.append(text[piece_start:].strip())
    return statements


@dataclass(frozen=True, slots=True)
class StatementShape:
    """What routing needs to know about one statement."""

    keyword: str  # first keyword, upper-cased ("" for an empty text)
    output_format: str | None  # from a top-level FORMAT clause
    format_span: tuple[int, int] | None  # where that clause sits in the text
    touches_server_files: bool  # INTO OUTFILE / FROM INFILE: files of the server host
    statement_count: int

    @property
    def returns_rows(self) -> bool:
        return self.keyword in _RESULT_KEYWORDS or self.keyword == "("


def shape_of(text: str) -> StatementShape:
    keyword = ""
    output_format: str | None = None
    format_span: tuple[int, int] | None = None
    files = False
    statements = 0
    previous: Token | None = None
    pending_format: Token | None = None
    in_statement = False
    for token in tokens(text):
        if token.kind is Kind.PUNCT and text[token.start] == ";":
            in_statement = False
            previous = None
            continue
        if not in_statement:
            statements += 1
            in_statement = True
            if statements == 1:
                keyword = token.upper(text) if token.kind is Kind.WORD else text[token.start : token.end]
        if statements > 1:
            break
        if (
            keyword == "INSERT"
            and token.depth == 0
            and token.kind is Kind.WORD
            and token.upper(text) == "VALUES"
        ):
            break  # the rest is data, as ClickHouse reads it (and may be megabytes long)
        if pending_format is not None:
            if token.kind is Kind.QUOTED or (
                token.kind is Kind.WORD and token.upper(text) not in _CLAUSE_WORDS
            ):
                output_format = text[token.start : token.end].strip('`"')
                format_span = (pending_format.start, token.end)
            pending_format = None
        if token.kind is Kind.WORD and previous is not None and previous.kind is Kind.WORD:
            pair = (previous.upper(text), token.upper(text))
            if pair in (("INTO", "OUTFILE"), ("FROM", "INFILE")):
                files = True
        if token.kind is Kind.WORD and token.depth == 0 and token.upper(text) == "FORMAT":
            before = previous.upper(text) if previous is not None else ""
            if before not in ("INTO", "TABLE", "FUNCTION", ".", "AS", ","):
                pending_format = token
        previous = token
    return StatementShape(keyword, output_format, format_span, files, statements)


def without_span(text: str, span: tuple[int, int] | None) -> str:
    if span is None:
        return text
    return text[: span[0]] + " " + text[span[1] :]


@dataclass(frozen=True, slots=True)
class InsertWithData:
    """An ``INSERT ... FORMAT X`` header and the offset where its data starts."""

    header: str  # the statement without its FORMAT clause, as chDB's send_insert wants it
    input_format: str
    data_start: int


class Undecided(enum.Enum):
    NEED_MORE = "need more text"
    NOT_INSERT_WITH_DATA = "not an insert carrying data"


def locate_insert_data(text: str, *, complete: bool) -> InsertWithData | Undecided:
    """Find where the data of ``INSERT ... FORMAT X`` starts in (a prefix of) ``text``.

    ``text`` is the body decoded as latin-1 so that offsets are byte offsets. With
    ``complete=False`` the answer may be ``NEED_MORE`` while the header could still continue.
    Data starts after the first newline following the format name, or after the whitespace.
    """
    previous: Token | None = None
    first = True
    for token in tokens(text):
        if token.kind is Kind.UNTERMINATED:
            return Undecided.NOT_INSERT_WITH_DATA if complete else Undecided.NEED_MORE
        upper = token.upper(text)
        if first:
            if token.end == len(text) and not complete:
                return Undecided.NEED_MORE
            if upper != "INSERT":
                return Undecided.NOT_INSERT_WITH_DATA
            first = False
        elif (token.depth == 0 and token.kind is Kind.WORD and upper == "VALUES") or (
            token.kind is Kind.PUNCT and text[token.start] == ";"
        ):
            return Undecided.NOT_INSERT_WITH_DATA
        elif (
            previous is not None
            and previous.kind is Kind.WORD
            and previous.depth == 0
            and previous.upper(text) == "FORMAT"
            and token.kind in (Kind.WORD, Kind.QUOTED)
        ):
            if token.end == len(text) and not complete:
                return Undecided.NEED_MORE
            data_start = token.end
            while data_start < len(text) and text[data_start] in _SPACE:
                data_start += 1
                if text[data_start - 1] == "\n":
                    break
            if data_start == len(text) and not complete and text[data_start - 1] != "\n":
                return Undecided.NEED_MORE
            header = text[: previous.start].rstrip()
            return InsertWithData(header, text[token.start : token.end].strip('`"'), data_start)
        previous = token
    return Undecided.NOT_INSERT_WITH_DATA if complete else Undecided.NEED_MORE


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def qualified_table(table: str, database: str) -> str:
    """``table`` as given when it names its database, else ``database``.``table`` quoted."""
    if "." in table or "`" in table or '"' in table:
        return table
    return f"{quote_identifier(database)}.{quote_identifier(table)}"
