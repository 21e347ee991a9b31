"""Command-line overrides that Hydra's grammar cannot read, explained before Hydra sees them.

Hydra reads each ``key=value`` argument with its own override grammar. A value with a space is
fine (``hydra.run.dir=outputs/my run``, quoted for the shell), but characters such as
``( ) [ ] { } ' " ~ # ! & ; < ^``, which are Hydra's syntax or not allowed unquoted, end in a
``LexerNoViableAltException`` or "mismatched input" and exit 1 with no hint; so does a value the
shell split in two at a space (the second half is not ``key=value``). ``refuse_unreadable``
reads the overrides with Hydra's own parser first and, for the first it cannot read, prints one
paragraph with the override quoted the way Hydra reads it, and exits 2.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import sys

EXIT_CONFIG_ERROR = 2


def hydra_quoted(value: str) -> str:
    """``value`` as a Hydra double-quoted string: only a ``"`` needs a backslash there."""
    return '"' + value.replace('"', '\\"') + '"'


def shell_quoted(text: str) -> str:
    """``text`` as one shell word: in single quotes, or in double quotes when it holds a ``'``."""
    if "'" in text and not any(c in text for c in "$`!"):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return shlex.quote(text)


def how_to_quote(override: str) -> str:
    """The shell argument that hands Hydra ``override`` with its value quoted for Hydra."""
    key, value = override.split("=", 1)
    return shell_quoted(f"{key}={hydra_quoted(value.strip())}")


def explain(override: str, previous: str | None, reason: str) -> str:
    """One paragraph: what Hydra could not read in ``override`` and the argument to type instead."""
    if "=" not in override:
        if previous is not None and "=" in previous:
            joined = f"{previous} {override}"
            fixed = how_to_quote(joined) if _needs_hydra_quotes(joined) else shell_quoted(joined)
            return (
                f"{override!r} is not a key=value override: the shell split {joined!r} in two at the space. "
                f"Quote the whole override for the shell: {fixed}"
            )
        return f"{override!r} is not a key=value override (Hydra: {reason}); write it as key=value"
    key, value = override.split("=", 1)
    home = ""
    if value.startswith("~/") and not _needs_hydra_quotes(f"{key}=/{value[2:]}"):
        home = f' (or let the shell write your home folder: {key}="$HOME/{value[2:]}")'
    return (
        f"Hydra cannot read the override {override!r} ({reason}). In a value that is not quoted for Hydra, "
        "characters such as ( ) [ ] { } , = ' \" ~ # ! & ; < ^ ` are Hydra's syntax or not allowed (a space alone "
        "is fine). Quote the value for Hydra, inside the shell's quotes: "
        f'{how_to_quote(override)}{home}; Hydra then reads it as it is (only a " in it needs a backslash)'
    )


def _needs_hydra_quotes(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        OverridesParser.create().parse_overrides([override])
    except OverrideParseException:
        return True
    return False


def overrides_of(args: list[str]) -> list[str] | None:
    """The ``key=value`` arguments among ``args``, as Hydra's argument parser sees them; None when
    that parser would stop on the flags itself (Hydra then says what is wrong with them)."""
    from hydra._internal.utils import get_args_parser

    if "--version" in args:
        return None
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return list(get_args_parser().parse_args(args).overrides)
        except SystemExit:
            return None


def refuse_unreadable(args: list[str], prog: str = "vaegan-train") -> None:
    """Exit 2 with one paragraph at the first override of ``args`` that Hydra's grammar cannot read."""
    overrides = overrides_of(args)
    if not overrides:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for i, override in enumerate(overrides):
        try:
            parser.parse_overrides([override])
        except OverrideParseException as err:
            reason = str(err).splitlines()[0].strip()
            message = explain(override, overrides[i - 1] if i else None, reason)
            print(f"{prog}: error: {message}", file=sys.stderr)
            sys.exit(EXIT_CONFIG_ERROR)
