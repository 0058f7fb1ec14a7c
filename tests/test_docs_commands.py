"""Every `mfd ...` command the docs quote exists, with the options they give it (issue 8,
defect 13: the docs said there was no command to lift a lockout while `mfd admin unlock`
existed). Checked against the real argparse tree of `mfd`, so a renamed option or action
fails here instead of in a technician's terminal."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from mfdkit.cli import _legacy_client, build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

# An inline code span that starts with `mfd `, or a shell line in a code block.
_INLINE = re.compile(r"`(mfd [^`]+)`")
_SHELL = re.compile(r"^\s*(?:\$ |# )?(?:[A-Z_]+=\S+ )*(mfd \S.*)$")


def _is_output(command: str) -> bool:
    """`mfd reader watch: 2 read(s)...`, `mfd admin: error: ...`: what mfd printed, not a
    command; and the boxes of a diagram."""
    head = command.split()[:4]
    return any(w.endswith(":") or w.startswith(("(", "─", "│")) or "──" in w for w in head)


def _mentions() -> list[tuple[str, int, str, bool]]:
    """(file, line, command, whole): ``whole`` for a command line as typed at a prompt."""
    found = []
    for path in DOCS:
        in_code = False
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_code = not in_code
                continue
            if in_code:
                shell = _SHELL.match(line)
                if shell and not _is_output(shell.group(1)) and (
                        line.lstrip().startswith(("$ ", "mfd "))):
                    found.append((path.name, n, shell.group(1), line.lstrip().startswith("$ ")))
                continue
            for cmd in _INLINE.findall(line):
                if not _is_output(cmd):
                    found.append((path.name, n, cmd, False))
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def _words(command: str) -> list[str]:
    # Shell syntax the docs use around a command: pipes, redirections, comments, brackets of
    # optional parts, ellipses.
    command = re.split(r"\s(?:\||>|2>|&&|#)\s", command)[0]
    command = (command.replace("[", " ").replace("]", " ").replace("…", " ")
               .replace("...", " "))
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def check(command: str) -> str | None:
    """What is wrong with ``command`` against the argparse tree, or None."""
    parser = build_parser()
    # The deprecated `mfd client --store ...` form that mfd still translates.
    words = _legacy_client(_words(command)[1:])
    known = _options(parser)
    subs = _subparsers(parser)
    path = ["mfd"]
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            if name in ("-h", "--help"):
                i += 1
                continue
            if name not in known:
                return f"{' '.join(path)} has no option {name}"
            takes_value = known[name].nargs != 0
            i += 2 if takes_value and "=" not in word else 1
            continue
        if subs:
            if word in subs:
                parser = subs[word]
                path.append(word)
                known = {**known, **_options(parser)}
                subs = _subparsers(parser)
            elif not (word.isupper() or word.startswith(("$", "<"))):
                # A placeholder (ACTION, $STORE) may stand for the action; a word may not.
                if not (len(path) == 2 and path[1] == "device"):  # `mfd device run|register`
                    return f"{' '.join(path)} has no action {word!r}"
                if word not in ("run", "register"):
                    return f"mfd device has no action {word!r}"
        i += 1
    return None


MENTIONS = _mentions()


def test_the_docs_quote_commands() -> None:
    assert len(MENTIONS) > 50  # the extraction works (the guide quotes a hundred or more)


@pytest.mark.parametrize(("where", "command"),
                         [(f"{f}:{n}", c) for f, n, c, _ in MENTIONS])
def test_every_command_in_the_docs_exists(where: str, command: str) -> None:
    problem = check(command)
    assert problem is None, f"{where}: `{command}`: {problem}"


def test_the_checker_catches_a_wrong_command() -> None:
    assert check("mfd admin --store X lift-lock --user a@b") is not None
    assert check("mfd admin --store X unlock --email a@b") is not None
    assert check("mfd device register --portal U --code C --engine emulator") is None
    assert check("mfd admin --store $STORE org-settings --org O --hold-hours 24") is None


#: Claims that a command does not exist, and the command that makes them false.
CLAIMS = [
    (re.compile(r"no (?:`mfd admin` )?commands? (?:yet )?to lift", re.I), ("admin", "unlock")),
    (re.compile(r"no (?:`mfd admin` )?commands? (?:yet )?to (?:lift|remove or rename users or "
                r"devices, )?[^.]*lift a lockout", re.I), ("admin", "unlock")),
    (re.compile(r"no (?:`mfd admin` )?commands? (?:yet )?to change (?:it|an org's hold)", re.I),
     ("admin", "org-settings")),
    (re.compile(r"no requests and no `mfd admin` commands", re.I), ("admin", "org-settings")),
]


def test_the_docs_do_not_deny_commands_that_exist() -> None:
    tree = _subparsers(build_parser())
    for pattern, (role, action) in CLAIMS:
        assert action in _subparsers(tree[role])  # the claim is false while this exists
        for path in DOCS:
            text = " ".join(path.read_text(encoding="utf-8").split())  # claims span lines
            found = pattern.search(text)
            assert found is None, (f"{path.name} says {found.group(0)!r}, but `mfd {role} "
                                   f"{action}` exists")
