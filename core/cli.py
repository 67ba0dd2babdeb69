"""The `ranklab` command: the demo, the production server, Celery and Django's commands.

    ranklab demo [--port N] [--host H]   demo data on the embedded default, then serve it
    ranklab serve [--port N] [--host H]  gunicorn (production; PORT, WEB_CONCURRENCY, WEB_THREADS)
    ranklab worker [celery args]         a Celery worker on the project's queue
    ranklab beat [celery args]           Celery beat (scheduled agreement runs)
    ranklab manage <command> [args]      any Django management command

It works from a checkout and from an installed package alike: settings, templates, static
files and demo data come with the package; data lives in RANKLAB_DATA_DIR.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Sequence

DEFAULT_PORT = 8000


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(__doc__.strip())
        return 0
    command, rest = args[0], args[1:]
    runners = {
        "demo": run_demo,
        "serve": run_serve,
        "worker": run_worker,
        "beat": run_beat,
        "manage": run_manage,
    }
    runner = runners.get(command)
    if runner is None:
        print(f"ranklab: unknown command {command!r}; try `ranklab --help`", file=sys.stderr)
        return 2
    return runner(rest)


def _address_parser(prog: str, default_host: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"ranklab {prog}")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or DEFAULT_PORT),
        help="port to listen on (default: $PORT or 8000)",
    )
    parser.add_argument("--host", default=default_host, help=f"address (default {default_host})")
    return parser


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (checked by binding it for a moment)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _refuse_busy_port(host: str, port: int) -> bool:
    if port_is_free(host, port):
        return False
    print(
        f"ranklab: port {port} on {host} is already in use; "
        f"choose another with --port N (or PORT=N)",
        file=sys.stderr,
    )
    return True


def _setup_django() -> None:
    import django
    from django.conf import settings

    django.setup()
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)


def run_demo(argv: Sequence[str]) -> int:
    """Migrate the embedded database, build the demo (idempotent), and serve it."""
    options = _address_parser("demo", "127.0.0.1").parse_args(argv)
    if _refuse_busy_port(options.host, options.port):
        return 1
    _setup_django()
    from django.conf import settings
    from django.core.management import call_command

    print("Preparing the database…", flush=True)
    call_command("migrate", verbosity=0, interactive=False)
    url = f"http://{options.host}:{options.port}/"
    print("Building the demo projects…", flush=True)
    call_command("demo", base_url=url)
    print(f"\nRanklab is serving {url} — open it and log in with one of the users above.")
    print(f"Data: {settings.DATABASES['default']['NAME']}. Stop with Ctrl-C.\n", flush=True)
    call_command(
        "runserver",
        f"{options.host}:{options.port}",
        use_reloader=False,
        skip_checks=True,
    )
    return 0


def run_serve(argv: Sequence[str]) -> int:
    """gunicorn with the project's WSGI app; extra arguments go to gunicorn."""
    parser = _address_parser("serve", "0.0.0.0")
    options, extra = parser.parse_known_args(argv)
    if _refuse_busy_port(options.host, options.port):
        return 1
    workers = os.environ.get("WEB_CONCURRENCY", "3")
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--bind",
        f"{options.host}:{options.port}",
        "--workers",
        workers,
        # Threads: a streamed model reply (red team, arena) waits on the endpoint in one
        # thread while the worker's others serve the rater loop. gunicorn's gthread worker,
        # taking connections only while it has a free thread (core/web_worker.py).
        "--worker-class",
        "core.web_worker.BalancedThreadWorker",
        "--threads",
        os.environ.get("WEB_THREADS", "8"),
        # The app (Django, the apps, every view: config/wsgi.py) loads once, in the master,
        # before the workers fork: each worker, a restarted one too, serves at once and
        # shares the loaded code's memory, rather than each loading it again (seconds of
        # CPU where Python compiles from source) while the others take its traffic. Loading
        # opens no database connection (tests/core/test_startup.py), so none is shared.
        "--preload",
        "--access-logfile",
        "-",
        *extra,
    ]
    os.execv(sys.executable, command)


def _celery(subcommand: str, argv: Sequence[str]) -> int:
    command = [sys.executable, "-m", "celery", "-A", "config", subcommand, "--loglevel", "INFO"]
    os.execv(sys.executable, [*command, *argv])


def run_worker(argv: Sequence[str]) -> int:
    from config.settings import CELERY_TASK_DEFAULT_QUEUE

    has_queue = any(arg in {"-Q", "--queues"} or arg.startswith("--queues=") for arg in argv)
    queue = [] if has_queue else ["--queues", CELERY_TASK_DEFAULT_QUEUE]
    return _celery("worker", [*queue, *argv])


def run_beat(argv: Sequence[str]) -> int:
    return _celery("beat", argv)


def run_manage(argv: Sequence[str]) -> int:
    from django.core.management import execute_from_command_line

    execute_from_command_line(["ranklab manage", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main())
