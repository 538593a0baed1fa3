"""The `trainyard` command: serve (API, plus a worker in embedded mode), worker, migrate, keys;
and the client commands datasets, jobs, models, predict."""

import errno
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app import __version__
from app.config import Settings, get_settings
from app.logs import configure_logging

if TYPE_CHECKING:
    import uvicorn

cli = typer.Typer(
    help="trainyard: a REST model-training service (`trainyard --version` prints its version).", no_args_is_help=True
)
log = logging.getLogger("trainyard")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    serving_only: Annotated[
        bool,
        typer.Option(
            "--serving-only",
            help="Serve predictions only (/v1/models, /v2, health, metrics): no datasets or "
            "jobs, no worker, no TensorFlow for versions exported to ONNX.",
        ),
    ] = False,
) -> None:
    """Run the HTTP API. In embedded mode (no TRAINYARD_BROKER_URL) also start a worker."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    # Checked before anything slow starts: a new user's mistake is one line within 2 s, not a
    # traceback after the worker and TensorFlow have loaded.
    try:
        listener = _bind(host, port)
        _check_database(settings)
    except StartupError as exc:
        typer.echo(f"trainyard serve: {exc}", err=True)
        raise typer.Exit(2) from None
    supervisor = None
    if settings.runs_embedded_worker and not serving_only:
        from app.embedded.supervisor import embedded_worker

        supervisor = embedded_worker(settings)
        supervisor.start()
    try:
        import uvicorn

        from app.main import create_app, create_serving_app

        app = (
            create_serving_app(settings, listen_hosts=[host])
            if serving_only
            else create_app(settings, embedded_worker=supervisor, listen_hosts=[host])
        )
        log.info(
            "API keys %s (TRAINYARD_AUTH=%s)", "required" if app.state.auth.required else "not required", settings.auth
        )
        mode = "serving only" if serving_only else "embedded worker" if supervisor else "external workers"
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=settings.access_log,
            # uvloop and httptools: the C event loop and HTTP parser (uvicorn[standard]).
            loop="uvloop",
            http="httptools",
        )
        _serve(config, listener, f"serving on {_url(host, port)} ({_where(settings)}, {mode})")
    finally:
        listener.close()
        if supervisor is not None:  # stopped by the app's shutdown, unless uvicorn never started
            supervisor.stop()


class StartupError(Exception):
    """Why serve cannot start, said as what to do about it (one line, no traceback)."""


def _bind(host: str, port: int) -> socket.socket:
    """The listening address, bound now (uvicorn listens on it once the app has started), so a
    port in use is found before anything else is loaded."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(
            f"cannot listen on {host!r}: {exc.strerror}; pass --host with an address of this machine"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts need no wait
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is in use (another trainyard serve?); stop that process or pass --port"
            ) from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}; pass another --host or --port") from None
    sock.set_inheritable(True)
    return sock


def _check_database(settings: Settings) -> None:
    """The database URL is one SQLAlchemy can use, and the schema is brought up to date."""
    from sqlalchemy.exc import SQLAlchemyError

    # Alembic logs each of its plugins at INFO when imported: seven lines of noise at every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from app.db.migrate import upgrade_to_head

    url = settings.sqlalchemy_url
    scheme = url.split(":", 1)[0]
    if scheme in ("postgres", "postgresql"):  # Heroku-style URLs; SQLAlchemy needs the driver named
        fixed = "postgresql+psycopg:" + url.split(":", 1)[1]
        raise StartupError(
            f"TRAINYARD_DATABASE_URL starts with {scheme}://, which SQLAlchemy cannot use here; write "
            f"postgresql+psycopg://… ({_safe(fixed)})"
        )
    if scheme == "sqlite" and settings.database_url is not None:
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:" and not Path(path).parent.is_dir():
            raise StartupError(
                f"the database's directory {Path(path).parent} does not exist; create it (mkdir -p) or fix "
                "TRAINYARD_DATABASE_URL"
            )
    try:
        upgrade_to_head(settings)
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StartupError(
            f"cannot open the database {_safe(url)}: {reason}; check TRAINYARD_DATABASE_URL and that the "
            "database server is running"
        ) from None


def _safe(url: str) -> str:
    """A database or broker URL without its credentials (logs and messages only)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.split('@')[-1]}" if sep else url


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _where(settings: Settings) -> str:
    return f"database {_safe(settings.sqlalchemy_url)}, broker {_safe(settings.celery_broker_url)}"


def _serve(config: "uvicorn.Config", listener: socket.socket, message: str) -> None:
    """uvicorn on the bound socket; `message` is logged once it accepts connections (after the
    app's start-up), so a quick start pasted right after it finds the port open."""
    import uvicorn

    from app.cpu_pool import stop_process_pools

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # False when start-up failed and the server is exiting
                log.info("%s", message)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            # Here: uvicorn re-raises SIGTERM once shut down, which ends serve before atexit.
            stop_process_pools()

    AnnouncingServer(config).run(sockets=[listener])


@cli.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: training, training.gpu.")] = "training",
    concurrency: Annotated[int, typer.Option(help="Jobs run at once (child processes).")] = 1,
    name: Annotated[str | None, typer.Option(help="Worker node name.")] = None,
) -> None:
    """Run a Celery worker that trains jobs from the broker."""
    from app.db.migrate import upgrade_to_head
    from app.db.session import dispose_engines

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    upgrade_to_head(settings)
    dispose_engines()  # children are forked from this process: leave them no shared sockets
    from celery.bin.celery import celery as celery_command

    node = name or f"trainyard-{os.getpid()}@{socket.gethostname()}"
    # The worker app is named, not imported: app.* never imports workers (DESIGN.md).
    celery_command.main(
        args=[
            "--app=workers.celery_app:celery_app",
            # Celery's start-up banner is printed, not logged: not in a JSON log.
            *(["--quiet"] if settings.log_json else []),
            "worker",
            f"--queues={queues}",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            f"--hostname={node}",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
        ],
        prog_name="trainyard worker",
    )


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date (serve and worker also do this on start)."""
    from app.db.migrate import upgrade_to_head

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    upgrade_to_head(settings)
    typer.echo(f"schema up to date: {settings.sqlalchemy_url.split('@')[-1]}")


keys_cli = typer.Typer(
    help="API keys, straight in the database (how the first admin key is made).", no_args_is_help=True
)
cli.add_typer(keys_cli, name="keys")


@keys_cli.command("create")
def keys_create(
    scope: Annotated[list[str], typer.Option("--scope", help="read, train, predict, deploy or admin (repeatable).")],
    project: Annotated[str, typer.Option(help="The project the key acts in.")] = "default",
    name: Annotated[str, typer.Option(help="A note to tell keys apart.")] = "",
    expires_in: Annotated[float | None, typer.Option("--expires-in", help="Days until the key expires.")] = None,
) -> None:
    """Create a key and print it: it is shown this once (only its hash is stored)."""
    from pydantic import ValidationError

    from app.auth import service
    from app.auth.schemas import KeyCreate
    from app.db.migrate import upgrade_to_head
    from app.db.session import session_scope

    try:
        request = KeyCreate.model_validate(
            {"project": project, "scopes": scope, "name": name, "expires_in_days": expires_in}
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(problems) from exc
    settings = get_settings()
    upgrade_to_head(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        row, key = service.create_key(session, request.project, request.scopes, request.name, request.expires_in_days)
        typer.echo(f"created key {row.id} (project {row.project}, scopes {', '.join(row.scopes)})", err=True)
    typer.echo(key)


@keys_cli.command("list")
def keys_list(project: Annotated[str | None, typer.Option(help="One project's keys only.")] = None) -> None:
    """Every key (never the key itself): id, prefix, project, scopes, expiry, revocation, last use."""
    from app.auth import service
    from app.db.migrate import upgrade_to_head
    from app.db.session import session_scope

    settings = get_settings()
    upgrade_to_head(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        for row in service.list_keys(session, project):
            state = (
                "revoked" if row.revoked_at else f"expires {row.expires_at:%Y-%m-%d}" if row.expires_at else "active"
            )
            used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
            typer.echo(
                f"{row.id}  {row.prefix}…  {row.project}  {','.join(row.scopes)}  {state}  used {used}  {row.name}"
            )


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `trainyard keys list`).")]) -> None:
    """Revoke a key: it stops working everywhere within TRAINYARD_KEY_CACHE_S."""
    from app.auth import service
    from app.db.migrate import upgrade_to_head
    from app.db.session import session_scope
    from app.errors import NotFound

    settings = get_settings()
    upgrade_to_head(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        try:
            service.revoke_key(session, key_id)
        except NotFound as exc:
            typer.echo(exc.message, err=True)
            raise typer.Exit(1) from exc
    typer.echo(f"revoked {key_id}")


# The client commands (app.client.cli): they talk to a server over HTTP, through the SDK.
from app.client.cli import datasets_cli, jobs_cli, models_cli, predict  # noqa: E402

cli.add_typer(datasets_cli, name="datasets")
cli.add_typer(jobs_cli, name="jobs")
cli.add_typer(models_cli, name="models")
cli.command("predict")(predict)


def main() -> None:
    # TensorFlow's C++ start-up chatter is not actionable for users of the service.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if sys.argv[1:] in (["--version"], ["-V"]):  # here, not a callback: client commands own the callback
        typer.echo(f"trainyard {__version__}")
        return
    cli()


if __name__ == "__main__":
    main()
