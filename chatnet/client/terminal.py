"""
``chatnet-client [HOST] [PORT]`` or ``chatnet-client host1:port1 host2:port2``:
options, connection, and the choice of front end (full-screen when stdin is
a terminal, line mode otherwise).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, NoReturn

from twisted.internet import task

from chatnet import validation
from chatnet._version import __version__
from chatnet.client import alerts
from chatnet.client.core import ClientCore
from chatnet.client.lines import (
    EXIT_CONNECT,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    run_line_mode,
)
from chatnet.client.link import CannotConnect, Link
from chatnet.client.reconnect import Policy, parse_servers
from chatnet.errors import ChatError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DOWNLOADS = "downloads"
#: Line mode's default for ``--retry-for``: a script is not left hanging.
LINE_MODE_RETRY_FOR = 300.0

EPILOG = """\
commands: /join <room>, /leave, /broadcast <message> (or plain text),
/whisper <user> <message>, /sendfile <file> <user>, /cancel <transfer>,
/accept <transfer>, /decline <transfer>, /rooms, /who [room], /users,
/reconnect, /help, /exit

servers: HOST [PORT] (the default is 127.0.0.1 8080), or several as
host:port words, tried in this order: at start, and again whenever the
connection is lost, the next one is tried when one is gone or refuses.

reconnecting: once logged in, a lost connection is restored (pauses of
about 1 s doubling to 30 s), logging in with the same name and password and
rejoining the room; /reconnect or Ctrl+R tries at once.  Line mode gives up
after --retry-for seconds (default 300), full screen never does.

exit status: 0 normal; 1 error; 2 bad options; 3 cannot connect;
4 login rejected (also when logging in again is refused); 5 server shut
down (with --no-reconnect, or the last loss before giving up); 6 connection
lost (idem); 130 interrupted (line mode).
The password for servers with accounts is read from $CHATNET_PASSWORD;
the full-screen interface asks for it when the server wants one.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``chatnet-client``."""
    parser = argparse.ArgumentParser(
        prog="chatnet-client",
        description="Chat and share files on a chatnet server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("servers", nargs="*", metavar="SERVER",
                        help=f"HOST [PORT] (default {DEFAULT_HOST} {DEFAULT_PORT}), or "
                        "several host:port, tried in order")
    parser.add_argument("-u", "--username", help="log in with this name "
                        "(otherwise asked for; in line mode, the first input line)")
    parser.add_argument("--downloads", metavar="DIR", default=DEFAULT_DOWNLOADS,
                        help=f"folder for received files (default ./{DEFAULT_DOWNLOADS})")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--ca", metavar="FILE",
                        help="PEM certificate to trust for --tls (implies --tls)")
    parser.add_argument("--json", action="store_true",
                        help="line mode, printing each server frame as a JSON line")
    parser.add_argument("--plain", action="store_true",
                        help="line mode even on a terminal")
    parser.add_argument("--bell", choices=alerts.BELL_CHOICES, default=alerts.DEFAULT_BELL,
                        help="full screen: ring the terminal bell for lines that mention "
                        "you and whispers (mentions, the default), whispers only, every "
                        "line from others (all), or never (none)")
    parser.add_argument("--login-timeout", metavar="SECONDS", type=float, default=10.0,
                        help="give up when the server has not answered login within "
                        "this long (default 10)")
    parser.add_argument("--keepalive", metavar="SECONDS", type=float, default=30.0,
                        help="once logged in, ping a server that has said nothing for "
                        "this long, and treat the connection as lost when nothing "
                        "comes back within 20 s (default 30; 0: never)")
    parser.add_argument("--no-reconnect", dest="reconnect", action="store_false",
                        help="do not connect again when the connection is lost: exit "
                        "with status 5 (shut down) or 6 (lost), as both modes once did")
    parser.add_argument("--retry-for", metavar="SECONDS", type=float, default=None,
                        help="give up reconnecting after this long without a connection "
                        "(default: 300 in line mode, never on the full screen)")
    parser.add_argument("--accept-files", action="store_true",
                        help="full screen: take every file sent to you without asking")
    parser.add_argument("--ask-files", action="store_true",
                        help="line mode: have each file offered first; answer with "
                        "/accept N or /decline N (files are taken without asking otherwise)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the options (exits with status 2 on bad ones)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.server_list = parse_servers(args.servers, DEFAULT_HOST, DEFAULT_PORT)
    except ValueError as e:
        parser.error(str(e))
    args.host, args.port = args.server_list[0].host, args.server_list[0].port
    if args.retry_for is not None and not args.retry_for > 0:
        parser.error("--retry-for must be more than 0 seconds")
    if not args.login_timeout > 0:
        parser.error("--login-timeout must be more than 0 seconds")
    if not args.keepalive >= 0:
        parser.error("--keepalive must be 0 (never) or more seconds")
    if args.username is not None:
        try:
            validation.check_username(args.username)
        except ChatError as e:
            parser.error(e.message)
    if os.path.exists(args.downloads) and not os.path.isdir(args.downloads):
        parser.error(f"--downloads {args.downloads!r}: not a folder")
    if args.ca is not None:
        if not os.path.isfile(args.ca):
            parser.error(f"--ca {args.ca!r}: no such file")
        args.tls = True
    return args


def interactive(args: argparse.Namespace) -> bool:
    """Full screen only on a real terminal, and only when not asked otherwise."""
    return not (args.plain or args.json) and sys.stdin.isatty() and sys.stdout.isatty()


async def run(reactor: Any, args: argparse.Namespace) -> None:
    """Connect, run the chosen front end, and exit with its status."""
    full_screen = interactive(args)
    asks = not args.accept_files if full_screen else args.ask_files
    core = ClientCore(
        reactor, args.downloads, login_timeout=args.login_timeout, offers=asks,
        keepalive=args.keepalive,
    )
    retry_for = args.retry_for
    if retry_for is None and not full_screen:
        retry_for = LINE_MODE_RETRY_FOR
    policy = Policy(args.server_list, reactor.seconds, give_up_after=retry_for)
    link = Link.over_tcp(reactor, core, policy, tls=args.tls, ca=args.ca,
                         reconnect=args.reconnect)
    # Until a front end takes over Ctrl+C, it just ends the program; there is
    # nothing to clean up yet.  (After reactor startup: Twisted installs its
    # own handlers then.)
    reactor.callWhenRunning(
        signal.signal, signal.SIGINT, lambda *_: _interrupted_early()
    )
    try:
        await link.open()
    except CannotConnect as e:
        _fail(e.message)
    password = os.environ.get("CHATNET_PASSWORD")
    if full_screen:
        from chatnet.client.fullscreen import run_interactive

        status = await run_interactive(
            reactor, core, link=link, username=args.username, password=password,
            bell=args.bell,
        )
    else:
        status = await run_line_mode(
            reactor, core, link=link, as_json=args.json, username=args.username,
            password=password,
        )
    raise SystemExit(status)


def _interrupted_early() -> None:
    sys.stderr.write("chatnet-client: interrupted\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def _fail(message: str, status: int = EXIT_CONNECT) -> NoReturn:
    sys.stderr.write(f"chatnet-client: {message}\n")
    raise SystemExit(status)


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``chatnet-client`` console script."""
    args = parse_args(argv)
    try:
        task.react(lambda reactor: run(reactor, args))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(EXIT_ERROR)  # pragma: no cover - react always exits


if __name__ == "__main__":
    main()
