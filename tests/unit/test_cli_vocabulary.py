"""The command line speaks one vocabulary (no data needed: the parser only).

Every command has a description; a town is the positional ``INSEE``; list options take
space- or comma-separated values over repeated uses; each national table has its own
command; the former mode flags still parse and name their replacement.
"""

from __future__ import annotations

import argparse
import logging

import pytest

from geo.cli import build_parser
from geo.cli._args import ListAction


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_has_a_description_and_a_help_line() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    for name, command in _commands().items():
        assert command.description and len(command.description) > 40, name
        assert helps.get(name), name


def test_the_town_argument_is_insee_everywhere() -> None:
    for name in ("card", "facilities", "access", "aggregate", "publish", "portrait",
                 "town", "commune", "settings-stamps"):
        positionals = [a for a in _commands()[name]._actions
                       if not a.option_strings and a.dest != "help"]
        assert [(a.dest, a.metavar) for a in positionals] == [("insee", "INSEE")], name


def test_stage_and_national_table_commands_exist() -> None:
    names = set(_commands())
    assert {"card", "facilities", "access", "aggregate", "publish", "portrait", "town"} <= names
    assert {"reference", "facility-counts", "facility-trends", "landcover-communes",
            "typology-stats", "themes", "national"} <= names


@pytest.mark.parametrize("argv", [
    ["towns", "--departement", "04", "05"],
    ["towns", "--departement", "04,05"],
    ["towns", "--departement", "04", "--departement", "05"],
    ["batch", "--pvd", "--departement", "04", "05"],
    ["site", "--departement", "04,05"],
    ["site", "--departements", "04", "05"],  # the former spelling
    ["landcover-communes", "--departement", "04", "--departement", "05"],
])
def test_lists_are_spelled_the_same_everywhere(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.departement == ["04", "05"]


def test_list_values_are_converted_and_checked() -> None:
    parser = build_parser()
    assert parser.parse_args(["aggregate", "01306", "--res", "8,9"]).res == [8, 9]
    assert parser.parse_args(["aggregate", "01306", "--res", "8", "9"]).res == [8, 9]
    assert parser.parse_args(["access", "01306", "--mode", "walk,bike"]).mode == ["walk", "bike"]
    assert parser.parse_args(["portrait", "01306", "--criteria", "densite,region"]).criteria \
        == ["densite", "region"]
    assert parser.parse_args(["portrait", "01306", "--criteria", ""]).criteria == []
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["access", "01306", "--mode", "car"])
    assert exc.value.code == 2


def test_list_action_alone() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", action=ListAction, convert=int)
    assert p.parse_args([]).n is None
    assert p.parse_args(["--n", "1,2", "--n", "3"]).n == [1, 2, 3]


@pytest.mark.parametrize(("argv", "func", "replacement"), [
    (["facilities", "--counts"], "_run_counts", "pvdgeo facility-counts"),
    (["facilities", "--trends"], "_run_trends", "pvdgeo facility-trends"),
    (["aggregate", "--landcover-communes"], "run_landcover_communes",
     "pvdgeo landcover-communes"),
    (["commune", "--build-reference"], "run_reference", "pvdgeo reference"),
])
def test_former_mode_flags_run_the_new_command_and_say_so(
        argv: list[str], func: str, replacement: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    args = build_parser().parse_args(argv)
    module = __import__(args.func.__module__, fromlist=["_"])
    called = []
    monkeypatch.setattr(module, func, lambda a, s: called.append(func) or 0)
    with caplog.at_level(logging.WARNING, logger="geo.cli"):
        assert args.func(args, None) == 0
    assert called == [func]
    assert replacement in caplog.text and "deprecated" in caplog.text


def test_publish_out_and_its_former_spelling() -> None:
    parser = build_parser()
    assert str(parser.parse_args(["publish", "01306", "--out", "d"]).out) == "d"
    args = parser.parse_args(["publish", "01306", "--dir", "d"])
    assert str(args.old_dir) == "d" and args.out is None
