"""`switchboard` — serve, demo, agent add, token create."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from connectors.registry import CONNECTORS
from inbox.agents import ROLES, AgentExists, Agents
from inbox.db import connect, ensure_indexes
from inbox.embedded import running_server_uri
from web.runtime import StartupError, database, run, serve
from web.settings import ConfigError, Settings, load_settings

# our own API and session tokens, and every connector's token shapes
_SECRETS = re.compile("|".join([r"sb[ts]_[A-Za-z0-9_-]{20,}", *(
    pattern for cls in CONNECTORS.values() for pattern in getattr(cls, "secret_patterns", ()))]))


class RedactSecrets(logging.Filter):
    """Defence in depth: a bot token or API token that reaches a log line is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SECRETS.search(message):
            record.msg, record.args = _SECRETS.sub("***", message), None
        return True


OWN_PACKAGES = ("connectors", "inbox", "replies", "web", "__main__")


class LibrariesQuiet(logging.Filter):
    """Our own modules log at the chosen level; libraries (HTTP clients, platform SDKs, the
    database driver) only their warnings, whichever platforms are installed."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name.split(".")[0] in OWN_PACKAGES or record.name == "root"
        return own or record.levelno >= logging.WARNING


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(LibrariesQuiet())
    handler.addFilter(RedactSecrets())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


async def _with_agents(args: argparse.Namespace, action: str) -> None:
    settings = _settings(args)
    async with database(settings, reuse_running=True) as (uri, _):
        client = connect(uri)
        try:
            db = client[settings.database.name]
            await ensure_indexes(db)
            agents = Agents(db)
            if action == "add":
                await _agent_add(agents, args)
            else:
                await _token_create(agents, args)
        finally:
            await client.close()


async def _agent_add(agents: Agents, args: argparse.Namespace) -> None:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = getpass.getpass("Password: ")
    if len(password) < 8:
        raise StartupError("the password must have at least 8 characters")
    try:
        doc = await agents.create(args.login, display_name=args.name, title=args.title,
                                  role=args.role, password=password)
    except AgentExists as exc:
        raise StartupError(str(exc)) from None
    print(f"Added {doc['role']} '{doc['login']}' ({doc['display_name']}).")


async def _token_create(agents: Agents, args: argparse.Namespace) -> None:
    agent = await agents.by_login(args.login)
    if agent is None or not agent.get("active"):
        raise StartupError(f"no active agent with login '{args.login}'")
    token, _ = await agents.create_token(str(agent["_id"]), args.name)
    print(f"API token for '{agent['login']}' (shown once; send it as 'Authorization: Bearer'):")
    print(token)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    p.add_argument("--config", help="settings file (default: settings.toml)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the server")
    s.add_argument("--config", default=argparse.SUPPRESS)
    s.add_argument("--processes", type=int, default=None, metavar="N",
                   help="run N server processes on one port and database (default: "
                        "server.processes)")
    s.add_argument("--join", nargs="?", const="", default=None, metavar="URI",
                   help="be one more process of a running Switchboard: its database URI, or "
                        "empty for the one running on this data dir")
    d = sub.add_parser("demo", help="run the server with a sandbox of every channel and demo data")
    d.add_argument("--config", default=argparse.SUPPRESS)
    d.add_argument("--quiet-customers", action="store_true",
                   help="do not simulate customers writing")
    agent = sub.add_parser("agent", help="manage agents").add_subparsers(dest="action",
                                                                         required=True)
    add = agent.add_parser("add", help="add an agent")
    add.add_argument("login")
    add.add_argument("--name", required=True, help="the name customers see, e.g. 张客服")
    add.add_argument("--title", default=None)
    add.add_argument("--role", choices=ROLES, default="agent")
    add.add_argument("--password-stdin", action="store_true")
    add.add_argument("--config", default=argparse.SUPPRESS)
    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="action",
                                                                            required=True)
    create = token.add_parser("create", help="print a new API token for an agent")
    create.add_argument("login")
    create.add_argument("--name", default="cli")
    create.add_argument("--config", default=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not hasattr(args, "config"):
        args.config = None
    setup_logging()
    try:
        if args.command == "serve":
            settings = _settings(args)
            join = args.join
            if join == "":
                join = running_server_uri(settings.database.data_dir) or settings.database.uri
                if not join:
                    raise ConfigError("--join: no Switchboard is running on "
                                      f"{settings.database.data_dir}")
            processes = args.processes or settings.server.processes
            if processes < 1:
                raise ConfigError("--processes: at least 1")
            return run(serve(settings, processes=processes, join=join,
                             config=Path(args.config) if args.config else None))
        if args.command == "demo":
            from web.demo import demo

            return run(demo(_settings(args), customers=not args.quiet_customers))
        action = "add" if args.command == "agent" else "token"
        return run(_with_agents(args, action))
    except ConfigError as exc:
        print(f"switchboard: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
