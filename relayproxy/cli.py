"""The `relayproxy` command: serve, import, export, check-config.

Expected failures (a bad config, a missing file, a port in use) print one line naming the
cause and exit non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relayproxy import config
from relayproxy.config import ConfigError


class CommandError(Exception):
    """An expected failure of a command; its message is shown as is."""


def _load(path: str) -> config.Settings:
    return config.load(path)


def _graph(settings: config.Settings, *, durable: bool) -> Any:
    from relayproxy.graph import Graph, StoreError

    try:
        return Graph(settings, durable=durable)
    except StoreError as exc:
        raise CommandError(str(exc)) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    print(config.explain(settings))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from relayproxy import parsing_pool

    settings = _load(args.config)
    member = settings.member(args.member)
    if member is None:
        known = ", ".join(m.login for m in settings.members) or "none configured"
        raise CommandError(f"--member {args.member} is not a team member in {args.config} (members: {known}).")
    paths = [Path(p) for p in args.paths]
    for path in paths:
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
    parsers = parsing_pool.start()  # first: the workers load while this process does
    from relayproxy.importer import ProgressBar, import_paths
    from relayproxy.mailfiles import MailFileError

    try:
        graph = _graph(settings, durable=False)
    except CommandError:
        parsers.executor.shutdown(cancel_futures=True)
        raise
    bar = ProgressBar(paths)
    try:
        summary = import_paths(graph, member.login, paths, bar, parsers=parsers)
    except MailFileError as exc:
        raise CommandError(str(exc)) from None
    finally:
        bar.finish()
        graph.close()
    print(summary.line())
    if summary.read == 0:  # not an error (an empty Maildir is fine), but maybe the wrong path
        print(
            f"relayproxy: no mail found in {', '.join(map(str, paths))}; import reads mbox files, "
            "Maildir folders, folders of message files, .eml and .emlx files.",
            file=sys.stderr,
        )
    return 0


def write_export(kind: str, items: list[dict[str, Any]], fmt: str, out: Any) -> None:
    """Write export items as JSON (an array) or CSV (a header row, then one row per item)."""
    if fmt == "json":
        json.dump(items, out, ensure_ascii=False, indent=1)
        out.write("\n")
        return
    from relayproxy.web.export import to_csv

    out.write(to_csv(kind, items))


def cmd_export(args: argparse.Namespace) -> int:
    from relayproxy.graph import queries
    from relayproxy.graph.mail import now_utc
    from relayproxy.graph.store import connect

    settings = _load(args.config)
    path = settings.storage.database
    if not path.exists():
        raise CommandError(f"database {path} does not exist yet; run `relayproxy serve` or `relayproxy import` first.")
    read = queries.people if args.kind == "people" else queries.companies
    try:
        with contextlib.closing(connect(path, readonly=True)) as conn:
            items = read(conn, now_utc())
    except sqlite3.Error as exc:
        raise CommandError(f"cannot read database {path}: {exc}.") from None
    write_export(args.kind, items, args.format, sys.stdout)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from relayproxy.serve import run

    settings = _load(args.config)
    return run(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relayproxy", description="Relationship intelligence from a mail proxy.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", required=True, metavar="FILE", help="the TOML config file")
        return p

    command("serve", "run the SMTP and IMAP proxies, the ingest worker and the web site").set_defaults(run=cmd_serve)
    p = command("import", "import mbox files, Maildir folders, message folders or .eml files as a member's mail")
    p.add_argument("--member", required=True, metavar="LOGIN", help="the member whose mail this is")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(run=cmd_import)
    p = command("export", "write people or companies as the team sees them")
    p.add_argument("kind", choices=["people", "companies"])
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.set_defaults(run=cmd_export)
    command("check-config", "validate the config file and explain it").set_defaults(run=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"relayproxy: {exc}", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"relayproxy: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `relayproxy export ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush is quiet too
        return 0
    except OSError as exc:  # a port in use, a permission problem: the OS said why
        print(f"relayproxy: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
