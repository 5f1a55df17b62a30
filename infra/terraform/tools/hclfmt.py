"""Canonical HCL layout without the ``terraform`` binary: a port of the whitespace rules of
``terraform fmt``, for machines (like the test suite's) where Terraform cannot be installed.

``terraform fmt`` formats through ``hclwrite.Format`` of hashicorp/hcl v2 (``hclwrite/format.go``):

1. **Indent** (``formatIndent``): two spaces per level; a line whose brackets (``{ [ (`` and template
   ``${``) open more than they close starts a level, a line that closes more ends as many levels as it
   closes.
2. **Spaces** (``formatSpaces`` / ``spaceAfterToken``): one space between most tokens, none after an
   opening or before a closing bracket (braces excepted: ``{ a = 1 }``), none around ``.``, before ``,``
   or between a function name and ``(``, none inside quoted templates, none after unary ``!`` or ``-``.
3. **Cells** (``formatCells``): on consecutive lines that each hold a whole one-line attribute
   (``name = value`` whose value opens no bracket it does not close), the ``=`` signs line up one space
   after the longest name; a blank line, a comment line, a block header or a multi-line value ends the
   run. Trailing comments line up the same way.

Terraform additionally rewrites a few expressions (``"${var.x}"`` becomes ``var.x``, quoted variable
types lose their quotes); :func:`check` reports those instead of rewriting them. Not supported (raises
``HclFormatError``): heredocs, ``/* */`` comments, tabs, CR line endings and non-ASCII text, which the
project's Terraform does not use. The authority stays ``terraform fmt -check -recursive`` (run in CI);
this module is the offline approximation ``tests/test_terraform.py`` runs.

Usage: ``python infra/terraform/tools/hclfmt.py [--write] FILE_OR_DIR…`` prints the files that are not in
canonical form with a diff (exit 1), or rewrites them with ``--write``.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path


class HclFormatError(ValueError):
    """Input this formatter does not handle (names the file and line)."""


@dataclass
class Token:
    """One HCL token: ``kind`` (hclsyntax token type, shortened), ``text`` and the spaces before it."""

    kind: str
    text: str
    spaces: int = 0


# Multi-character operators first (longest match wins), then single characters.
_OPERATORS = [
    ("...", "ELLIPSIS"),
    ("==", "EQUALOP"),
    ("!=", "NOTEQUAL"),
    ("<=", "LTE"),
    (">=", "GTE"),
    ("&&", "AND"),
    ("||", "OR"),
    ("=>", "FATARROW"),
    ("::", "DOUBLECOLON"),
    ("=", "EQUAL"),
    ("<", "LT"),
    (">", "GT"),
    ("!", "BANG"),
    ("+", "PLUS"),
    ("-", "MINUS"),
    ("*", "STAR"),
    ("/", "SLASH"),
    ("%", "PERCENT"),
    ("?", "QUESTION"),
    (":", "COLON"),
    (",", "COMMA"),
    (".", "DOT"),
    ("(", "OPAREN"),
    (")", "CPAREN"),
    ("[", "OBRACK"),
    ("]", "CBRACK"),
    ("{", "OBRACE"),
    ("}", "CBRACE"),
]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_OPENERS = {"OBRACE", "OBRACK", "OPAREN", "TEMPLATE_INTERP", "TEMPLATE_CONTROL"}
_CLOSERS = {"CBRACE", "CBRACK", "CPAREN", "TEMPLATE_SEQ_END"}


def _bracket_change(tok: Token) -> int:
    """``tokenBracketChange``: +1 for an opener, -1 for a closer, else 0."""
    return 1 if tok.kind in _OPENERS else -1 if tok.kind in _CLOSERS else 0


def tokenize(text: str, name: str = "<hcl>") -> list[Token]:
    """Tokens of ``text`` (HCL native syntax), newlines included. Raises ``HclFormatError`` naming
    ``name`` and the line for unsupported or malformed input."""
    tokens: list[Token] = []
    # Stack of lexer modes: "tmpl" inside a quoted template, or [depth] inside a ${ } interpolation.
    stack: list = []
    i, n, line = 0, len(text), 1

    def fail(msg: str):
        raise HclFormatError(f"{name}:{line}: {msg}")

    while i < n:
        c = text[i]
        if ord(c) > 127:
            fail("non-ASCII character (keep .tf files ASCII)")
        if stack and stack[-1] == "tmpl":
            if c == '"':
                tokens.append(Token("CQUOTE", c))
                stack.pop()
                i += 1
            elif text.startswith("${", i) or text.startswith("%{", i):
                tokens.append(Token("TEMPLATE_INTERP" if c == "$" else "TEMPLATE_CONTROL", text[i : i + 2]))
                stack.append([0])
                i += 2
            elif c == "\n":
                fail("unterminated string")
            else:
                j = i
                while j < n:
                    if text[j] == "\\":
                        j += 2
                    elif text.startswith("$${", j) or text.startswith("%%{", j):
                        j += 3
                    elif text[j] in '"\n' or text.startswith("${", j) or text.startswith("%{", j):
                        break
                    else:
                        j += 1
                tokens.append(Token("QUOTEDLIT", text[i:j]))
                i = j
            continue
        if c == " ":
            i += 1
        elif c in "\t\r":
            fail("tab or carriage return")
        elif c == "\n":
            tokens.append(Token("NEWLINE", c))
            line += 1
            i += 1
        elif c == "#" or text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j + 1
            tokens.append(Token("COMMENT", text[i:j]))
            line += 1
            i = j
        elif text.startswith("/*", i):
            fail("/* */ comments are not supported")
        elif text.startswith("<<", i):
            fail("heredocs are not supported")
        elif c == '"':
            tokens.append(Token("OQUOTE", c))
            stack.append("tmpl")
            i += 1
        elif c == "{" and stack:
            stack[-1][0] += 1
            tokens.append(Token("OBRACE", c))
            i += 1
        elif c == "}" and stack:
            if stack[-1][0] == 0:
                tokens.append(Token("TEMPLATE_SEQ_END", c))
                stack.pop()
            else:
                stack[-1][0] -= 1
                tokens.append(Token("CBRACE", c))
            i += 1
        elif m := _IDENT.match(text, i):
            tokens.append(Token("IDENT", m.group()))
            i = m.end()
        elif m := _NUMBER.match(text, i):
            tokens.append(Token("NUMBER", m.group()))
            i = m.end()
        else:
            for op, kind in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token(kind, op))
                    i += len(op)
                    break
            else:
                fail(f"unexpected character {c!r}")
    if stack:
        fail("unterminated string or interpolation at end of file")
    return tokens


def _space_after(subject: Token, before: Token | None, after: Token) -> bool:
    """``spaceAfterToken`` of hclwrite/format.go."""
    s, a, b = subject.kind, after.kind, before.kind if before else "NIL"
    if a in ("NEWLINE", "NIL"):
        return False
    if s == "IDENT" and a == "OPAREN":
        return False
    if (s == "IDENT" and a == "DOUBLECOLON") or (s == "DOUBLECOLON" and a == "IDENT"):
        return False
    if s == "DOT" or a == "DOT":
        return False
    if a in ("COMMA", "ELLIPSIS"):
        return False
    if s == "COMMA":
        return True
    if s in ("QUOTEDLIT", "OQUOTE") or a in ("QUOTEDLIT", "CQUOTE"):
        return False
    if s == "IDENT" and subject.text == "in" and b == "IDENT":
        return True
    if a == "OBRACK" and (s in ("IDENT", "NUMBER") or _bracket_change(subject) < 0):
        return False
    if s == "BANG":
        return False
    if s == "MINUS":
        return b not in {
            "NIL", "OPAREN", "OBRACE", "OBRACK", "EQUAL", "COLON", "COMMA", "QUESTION",
            "PLUS", "STAR", "SLASH", "PERCENT", "MINUS",
            "EQUALOP", "NOTEQUAL", "GT", "GTE", "LT", "LTE", "AND", "OR", "BANG",
        }  # fmt: skip
    if s == "OBRACE" or a == "CBRACE":
        return not (s == "OBRACE" and a == "CBRACE")
    if s in ("TEMPLATE_INTERP", "TEMPLATE_CONTROL") and a == "OBRACE":
        return True
    if s == "CBRACE" and a == "TEMPLATE_SEQ_END":
        return True
    if s == "TEMPLATE_SEQ_END" and a in ("TEMPLATE_INTERP", "TEMPLATE_CONTROL"):
        return False
    if _bracket_change(subject) > 0:
        return False
    if _bracket_change(after) < 0:
        return False
    return True


@dataclass
class _Line:
    lead: list[Token]
    assign: list[Token]
    comment: list[Token]


def _columns(cell: list[Token]) -> int:
    return sum(t.spaces + len(t.text) for t in cell)


def format_hcl(text: str, name: str = "<hcl>") -> str:
    """``text`` laid out as ``hclwrite.Format`` lays it out (indent, spaces, aligned ``=`` and comments)."""
    tokens = tokenize(text, name)
    # linesForFormat: split after every newline (a # or // comment token carries its newline).
    lines: list[_Line] = []
    current: list[Token] = []
    for tok in tokens:
        current.append(tok)
        if tok.kind == "NEWLINE" or (tok.kind == "COMMENT" and tok.text.endswith("\n")):
            lines.append(_Line(current, [], []))
            current = []
    if current:
        lines.append(_Line(current, [], []))
    for ln in lines:
        if len(ln.lead) > 1 and ln.lead[-1].kind == "COMMENT":
            ln.comment, ln.lead = ln.lead[-1:], ln.lead[:-1]
        for i, tok in enumerate(ln.lead):
            if i > 0 and tok.kind == "EQUAL":
                if sum(_bracket_change(t) for t in ln.lead[i:]) == 0:
                    ln.assign, ln.lead = ln.lead[i:], ln.lead[:i]
                break
    # formatIndent
    indents: list[int] = []
    for ln in lines:
        if not ln.lead:
            continue
        if ln.lead[0].kind == "NEWLINE":
            ln.lead[0].spaces = 0
            continue
        net = sum(_bracket_change(t) for t in ln.lead + ln.assign)
        if net > 0:
            ln.lead[0].spaces = 2 * len(indents)
            indents.append(net)
        elif net < 0:
            closed = -net
            while closed > 0 and indents:
                if closed > indents[-1]:
                    closed -= indents.pop()
                elif closed < indents[-1]:
                    indents[-1] -= closed
                    closed = 0
                else:
                    indents.pop()
                    closed = 0
            ln.lead[0].spaces = 2 * len(indents)
        else:
            ln.lead[0].spaces = 2 * len(indents)
    # formatSpaces
    for ln in lines:
        for cell in (ln.lead, ln.assign):
            for i, tok in enumerate(cell):
                if cell is ln.assign and i == 0:
                    tok.spaces = 1
                if i == len(cell) - 1:
                    continue
                cell[i + 1].spaces = 1 if _space_after(tok, cell[i - 1] if i > 0 else None, cell[i + 1]) else 0

    # formatCells: runs of consecutive lines with an assign cell, then with a comment cell.
    def align(has_cell, width, target):
        start = None
        for idx in range(len(lines) + 1):
            if idx < len(lines) and has_cell(lines[idx]):
                start = idx if start is None else start
                continue
            if start is not None:
                widest = max(width(ln) for ln in lines[start:idx])
                for ln in lines[start:idx]:
                    target(ln).spaces = widest - width(ln) + 1
                start = None

    align(lambda ln: bool(ln.assign), lambda ln: _columns(ln.lead), lambda ln: ln.assign[0])
    align(
        lambda ln: bool(ln.comment),
        lambda ln: _columns(ln.lead) + _columns(ln.assign),
        lambda ln: ln.comment[0],
    )
    return "".join(" " * t.spaces + t.text for ln in lines for t in ln.lead + ln.assign + ln.comment)


_INTERPOLATION_ONLY = re.compile(r'=\s*"\$\{[^"{}]*\}"\s*$')
_QUOTED_TYPE = re.compile(r'^  type\s*=\s*"')


def check(text: str, name: str = "<hcl>") -> list[str]:
    """Problems that ``terraform fmt -check`` would report for ``text``, as ``name:line: message`` strings
    (empty when canonical). Raises ``HclFormatError`` for unsupported input."""
    problems = []
    formatted = format_hcl(text, name)
    if formatted != text:
        diff = difflib.unified_diff(
            text.splitlines(keepends=True), formatted.splitlines(keepends=True), name, f"{name} (formatted)"
        )
        problems.append(f"{name}: not in canonical layout:\n{''.join(diff)}")
    if not text.endswith("\n") or text.endswith("\n\n"):
        problems.append(f"{name}: must end with exactly one newline")
    in_variable = False
    for no, line in enumerate(text.splitlines(), 1):
        in_variable = line.startswith("variable ") or (in_variable and line != "}")
        if line != line.rstrip():
            problems.append(f"{name}:{no}: trailing whitespace")
        if _INTERPOLATION_ONLY.search(line):
            problems.append(f'{name}:{no}: interpolation-only string "${{...}}": terraform fmt unwraps it')
        if in_variable and _QUOTED_TYPE.match(line):
            problems.append(f"{name}:{no}: quoted type constraint: terraform fmt unquotes it")
    return problems


def hcl_files(paths: list[Path]) -> list[Path]:
    """The ``.tf`` and ``.tfvars`` files under ``paths`` (files or directories), sorted; ``.terraform/`` skipped."""
    found = []
    for p in paths:
        if p.is_dir():
            found += [f for f in p.rglob("*") if f.suffix in (".tf", ".tfvars") and ".terraform" not in f.parts]
        else:
            found.append(p)
    return sorted(found)


def main(argv: list[str]) -> int:
    write = "--write" in argv
    files = hcl_files([Path(a) for a in argv if a != "--write"] or [Path(__file__).resolve().parents[1]])
    bad = 0
    for f in files:
        text = f.read_text()
        if write:
            formatted = format_hcl(text, str(f))
            if formatted != text:
                f.write_text(formatted)
                print(f"formatted {f}")
        for problem in check(f.read_text(), str(f)):
            bad += 1
            print(problem)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
