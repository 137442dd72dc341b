"""The `filejob` command."""

from __future__ import annotations

import logging

import typer

from service.config import Settings

app = typer.Typer(help="filejob: upload-then-process job server.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address [FILEJOB_HOST]."),
    port: int | None = typer.Option(None, help="Port [FILEJOB_PORT]."),
) -> None:
    """Serve the API (the database must be upgraded first: `filejob db upgrade`)."""
    import uvicorn

    from service.app import create_app
    from service.server import DrainingServer

    settings = Settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )
    DrainingServer(config, app, settings.shutdown_grace).run()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply Alembic migrations up to REVISION."""
    from service.migrations import upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}: {settings.database_url}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
