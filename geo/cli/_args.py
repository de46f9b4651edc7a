"""The arguments every command spells the same way.

- a town is the positional ``INSEE`` (a code, or a name where the command resolves names);
- a list option takes values separated by spaces or commas, and can be repeated:
  ``--departement 04 05``, ``--departement 04,05`` and ``--departement 04 --departement
  05`` are the same (:class:`ListAction`);
- ``--out DIR`` is the town folder (or the output file of a national table);
- one command per job: a former mode flag (``facilities --counts``) or spelling
  (``publish --dir``) is still accepted, hidden from the help, with a warning naming what
  replaced it (:func:`deprecated`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ListAction", "add_departements", "add_insee", "deprecated"]

log = logging.getLogger("geo.cli")


class ListAction(argparse.Action):
    """Extend the option's list with values given space- or comma-separated (each value
    converted by ``convert``, default ``str``), over repeated uses."""

    def __init__(self, option_strings: Sequence[str], dest: str, *,
                 convert: Callable[[str], Any] = str, **kwargs: Any) -> None:
        kwargs.setdefault("nargs", "+")
        kwargs.setdefault("default", None)
        self.convert = convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        for value in values if isinstance(values, list) else [values]:
            for part in str(value).split(","):
                part = part.strip()
                if not part:
                    continue
                try:
                    items.append(self.convert(part))
                except ValueError:
                    parser.error(f"{option_string}: invalid value {part!r}")
        setattr(namespace, self.dest, items)


def add_insee(parser: argparse.ArgumentParser, *, optional: bool = False,
              names: bool = True, help: str | None = None) -> None:
    """The positional ``INSEE`` (dest ``insee``)."""
    text = help or ("INSEE code or name of the town (e.g. 01306, 'pont de veyle')" if names
                    else "INSEE code of the town (e.g. 01306)")
    parser.add_argument("insee", metavar="INSEE", nargs="?" if optional else None, help=text)


def add_departements(parser: argparse.ArgumentParser, *, help: str | None = None,
                     old: str | None = None) -> None:
    """``--departement DEP [DEP ...]`` (dest ``departement``, a list or None); ``old``: a
    former spelling kept hidden."""
    parser.add_argument("--departement", action=ListAction, metavar="DEP",
                        help=help or "only these départements (codes such as 04, 2A, 971; "
                        "space- or comma-separated, repeatable)")
    if old:
        parser.add_argument(old, action=ListAction, dest="departement", metavar="DEP",
                            help=argparse.SUPPRESS)


def deprecated(old: str, new: str) -> None:
    """Warn that the former spelling ``old`` (still accepted, hidden from the help) is
    now ``new``."""
    log.warning("%s is deprecated: use %s", old, new)
