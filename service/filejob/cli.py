"""The `filejob` command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from filejob.client import commands as client_commands
from filejob.config import Settings
from filejob.ops import logs

# add_completion: `--install-completion` and `--show-completion` for bash, zsh, fish, PowerShell.
app = typer.Typer(
    help="filejob: upload-then-process job server.", no_args_is_help=True, add_completion=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (FILEJOB_AUTH=required).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")

T = TypeVar("T")


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"filejob {version('filejob')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("filejob (version unknown: not installed)")
        raise typer.Exit()


@app.callback()
def options(
    show_version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """filejob: upload-then-process job server."""


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment plus command-line overrides, or a clear exit."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(map(str, error["loc"]))
            typer.echo(f"filejob: {where + ': ' if where else ''}{error['msg']}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address [FILEJOB_HOST]."),
    port: int | None = typer.Option(None, help="Port [FILEJOB_PORT]."),
) -> None:
    """Serve the API (the database must be upgraded first: `filejob db upgrade`)."""
    import uvicorn

    from filejob.api.http_limits import HeadLimits, protocol_with
    from filejob.api.server import CannotListen, DrainingServer, listen
    from filejob.app import create_app
    from filejob.compose import preflight

    settings = load_settings(host=host, port=port)
    logs.configure(settings.log_level, settings.log_format)
    # What the app would refuse to start with (stale schema, another executor mode, another
    # in-process server on this database), said in one line instead of a traceback.
    _run_refusable(preflight(settings))
    try:
        # Bound before the app starts: a taken port is reported here, not after "ready".
        sockets = listen(settings.host, settings.port)
    except CannotListen as exc:
        typer.echo(f"filejob: {exc}", err=True)
        raise typer.Exit(2) from None
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_with(HeadLimits.of(settings)),
        log_level=settings.log_level,
        access_log=settings.access_log,
        log_config=None,  # keep the handler `logs.configure` installed
        timeout_graceful_shutdown=30,
    )
    DrainingServer(config, app, settings.shutdown_grace).run(sockets=sockets)


@app.command()
def worker(
    concurrency: int | None = typer.Option(
        None, min=1, max=256, help="Jobs run at once [FILEJOB_WORKERS]."
    ),
    metrics_port: int | None = typer.Option(
        None, min=1, max=65535, help="Serve this worker's Prometheus metrics on FILEJOB_HOST."
    ),
) -> None:
    """Run jobs from the shared queue (FILEJOB_EXECUTOR=procrastinate) until SIGTERM/SIGINT."""
    from filejob.processors.registry import ProcessorRegistry
    from filejob.worker import QueueWorker

    settings = load_settings()
    if settings.executor != "procrastinate":
        typer.echo(
            "filejob: `filejob worker` serves the shared queue: set FILEJOB_EXECUTOR=procrastinate "
            "(and a PostgreSQL FILEJOB_DATABASE_URL), on the API servers too",
            err=True,
        )
        raise typer.Exit(2)
    logs.configure(settings.log_level, settings.log_format)
    queue_worker = QueueWorker(
        settings,
        ProcessorRegistry.discover(),
        concurrency=concurrency or settings.workers,
        metrics_port=metrics_port,
    )
    _run_refusable(queue_worker.run())


@db_app.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head"),
    switch_executor: bool = typer.Option(
        False,
        "--switch-executor",
        help="Make FILEJOB_EXECUTOR the deployment's way of running jobs (refused while a "
        "process of the old way runs). Without it, a FILEJOB_EXECUTOR other than the one the "
        "database records is refused before anything is migrated.",
    ),
) -> None:
    """Apply Alembic migrations up to REVISION, and record how the deployment runs jobs."""
    from sqlalchemy.engine import make_url

    from filejob.db.migrations import upgrade

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not switch_executor:
        _run_refusable(_on_deployment(settings, _agrees))
    upgrade(settings.database_url, revision)
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    typer.echo(f"database at {revision}: {shown}")
    if revision == "head":
        previous = _run_refusable(_on_deployment(settings, _record))
        now = f"jobs run by FILEJOB_EXECUTOR={settings.executor}"
        typer.echo(f"{now} (was {previous})" if previous else now)


async def _agrees(db: Any, settings: Settings) -> None:
    from filejob.db.deployment import DeploymentMismatch, recorded_executor

    recorded = await recorded_executor(db)
    if recorded is not None and recorded != settings.executor:
        raise DeploymentMismatch(
            f"this database's jobs are run by FILEJOB_EXECUTOR={recorded}, and this command "
            f"has FILEJOB_EXECUTOR={settings.executor}: nothing was migrated. Run it with "
            f"FILEJOB_EXECUTOR={recorded}, or add --switch-executor to change how the "
            "deployment runs jobs (with every server and worker stopped)"
        )


async def _record(db: Any, settings: Settings) -> str | None:
    from filejob.db.deployment import record_executor

    return await record_executor(db, settings.executor)


async def _on_deployment(settings: Settings, work: Callable[[Any, Settings], Awaitable[T]]) -> T:
    from filejob.compose import database

    db = database(settings)
    try:
        return await work(db, settings)
    finally:
        await db.dispose()


def _run_refusable(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; a refusal to start (stale schema, settings the deployment contradicts)
    is one line on stderr and exit code 2, not a traceback."""
    from filejob.db.deployment import RefusedToStart
    from filejob.db.migrations import SchemaOutOfDate

    try:
        return asyncio.run(work)
    except (SchemaOutOfDate, RefusedToStart) as exc:
        typer.echo(f"filejob: {exc}", err=True)
        raise typer.Exit(2) from None


def _with_keys(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(KeyService)` against the configured database."""
    from filejob.auth.service import KeyService
    from filejob.compose import database, key_defaults
    from filejob.db.migrations import ensure_schema_current

    settings = load_settings()

    async def run() -> T:
        db = database(settings)
        try:
            await ensure_schema_current(db)
            return await work(KeyService(db, key_defaults(settings)))
        finally:
            await db.dispose()

    return _run_refusable(run())


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="Who or what the key is for."),
    max_active_jobs: int | None = typer.Option(
        None, min=0, help="Most queued+running jobs [FILEJOB_MAX_ACTIVE_JOBS]; 0: unlimited."
    ),
    max_storage_bytes: int | None = typer.Option(
        None, min=0, help="Most bytes stored [FILEJOB_MAX_STORAGE_BYTES]; 0: unlimited."
    ),
    rate_limit: int | None = typer.Option(
        None, min=0, help="Most requests per minute [FILEJOB_RATE_LIMIT]; 0: unlimited."
    ),
) -> None:
    """Create a key and print it, once: only its hash is stored."""
    key, token = _with_keys(
        lambda keys: keys.create(
            name,
            max_active_jobs=max_active_jobs,
            max_storage_bytes=max_storage_bytes,
            rate_limit=rate_limit,
        )
    )
    typer.echo(f"id:             {key.id}")
    typer.echo(f"name:           {key.name}")
    typer.echo(f"api key:        {token}")
    typer.echo(f"webhook secret: {key.webhook_secret}")
    typer.echo("The api key is shown only now; store it safely.", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (ids, names, limits, state); never the keys themselves."""

    def limit(value: int | None) -> str:
        return "default" if value is None else ("unlimited" if value == 0 else str(value))

    keys = _with_keys(lambda keys: keys.list())
    typer.echo("ID\tNAME\tPREFIX\tACTIVE_JOBS\tSTORAGE_BYTES\tRATE/MIN\tCREATED\tREVOKED")
    for key in keys:
        typer.echo(
            "\t".join(
                [
                    key.id,
                    key.name,
                    key.token_prefix + "…",
                    limit(key.max_active_jobs),
                    limit(key.max_storage_bytes),
                    limit(key.rate_limit),
                    key.created_at.isoformat(timespec="seconds"),
                    key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "-",
                ]
            )
        )


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Revoke a key: its requests fail from now on; its jobs stay until retention."""
    if not _with_keys(lambda keys: keys.revoke(key_id)):
        typer.echo(f"filejob: no live key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


client_commands.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
