"""The ``pacs-ai`` command line: serve, db, nodes, import, models."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pacs_ai.archive.db import Database
from pacs_ai.archive.importer import import_folder
from pacs_ai.config import Settings
from pacs_ai.demo import create_demo_users, send_demo_studies
from pacs_ai.dimse import nodes
from pacs_ai.pipeline.command import jobs_app
from pacs_ai.registry.command import models_app
from pacs_ai.security import accounts
from pacs_ai.security.roles import Role
from pacs_ai.security.users import UserError
from pacs_ai.server import Server, build_context, create_server, start_ingest_pool
from pacs_ai.synth.command import synth

app = typer.Typer(help="pacs-ai: an AI-augmented PACS.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
nodes_app = typer.Typer(help="Known DICOM peers (C-MOVE destinations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(nodes_app, name="nodes")
app.command("synth")(synth)
app.add_typer(models_app, name="models")
app.add_typer(jobs_app, name="jobs")
users_app = typer.Typer(help="Users, roles and API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")

console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    return settings


@app.command()
def serve(
    demo: Annotated[
        bool,
        typer.Option(
            help="Create demo users (shown once) and send synthetic studies; not in production"
        ),
    ] = False,
) -> None:
    """Run the server (DIMSE, HTTP, AI pipeline) until interrupted."""
    settings = _settings()
    if demo and settings.environment == "production":
        err_console.print("[red]error:[/] --demo is refused in production")
        raise typer.Exit(2)
    server = create_server(settings)
    server.start()
    console.print(
        f"[bold green]pacs-ai[/] AE [bold]{settings.ae_title}[/] listening for DIMSE on "
        f"{settings.dimse_host}:{server.dimse_port}, HTTP (DICOMweb at /dicom-web) on "
        f"{settings.http_host}:{server.http_port}; data in {settings.data_dir.resolve()}"
    )
    if demo:
        _start_demo(server, settings)

    def _stop(signum: int, _frame: object) -> None:
        server.stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.stopped.wait()
    server.stop()


def _start_demo(server: Server, settings: Settings) -> None:
    """Demo users now (credentials printed once), synthetic studies in the background."""
    users = create_demo_users(server.context)
    if users:
        table = Table("user", "role", "password", title="demo users (shown once)")
        for user in users:
            table.add_row(user.username, user.role.value, user.password)
        console.print(table)
    console.print(f"worklist: http://{settings.http_host}:{server.http_port}/ui/")

    def _send() -> None:
        sent = send_demo_studies(settings, server.dimse_port)
        console.print(f"demo: {sent} synthetic instances sent through DIMSE; results follow")

    threading.Thread(target=_send, name="pacs-ai-demo", daemon=True).start()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision")) -> None:
    """Apply the shipped migrations to the configured database."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    Database(settings.effective_database_url).upgrade(revision)
    console.print(f"database at revision {revision}")


@nodes_app.command("add")
def nodes_add(
    ae_title: str,
    host: str,
    port: int,
    description: Annotated[str, typer.Option(help="Free text")] = "",
) -> None:
    """Add (or update) a peer by AE title."""
    settings = _settings()
    database = Database(settings.effective_database_url)
    database.upgrade()
    try:
        with database.write_sessions.begin() as session:
            nodes.create_or_update(
                session=session, ae_title=ae_title, host=host, port=port, description=description
            )
    except nodes.NodeError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"node {ae_title.strip()} -> {host}:{port}")


@nodes_app.command("list")
def nodes_list() -> None:
    """List the known peers."""
    settings = _settings()
    database = Database(settings.effective_database_url)
    database.upgrade()
    table = Table("AE title", "host", "port", "description")
    with database.sessions() as session:
        for node in nodes.list_all(session=session):
            table.add_row(node.ae_title, node.host, str(node.port), node.description)
    console.print(table)


@nodes_app.command("remove")
def nodes_remove(ae_title: str) -> None:
    """Forget a peer."""
    settings = _settings()
    database = Database(settings.effective_database_url)
    database.upgrade()
    try:
        with database.write_sessions.begin() as session:
            nodes.delete(session=session, ae_title=ae_title)
    except nodes.NodeError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"node {ae_title} removed")


@app.command("import")
def import_command(
    folder: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="Folder of DICOM files")
    ],
    processes: Annotated[
        int | None,
        typer.Option(
            min=0, help="Ingest processes side by side (default: PACS_AI_INGEST_PROCESSES)"
        ),
    ] = None,
) -> None:
    """Bulk-import every DICOM file under FOLDER through the ingest path."""
    settings = _settings()
    if processes is not None:
        settings = settings.model_copy(update={"ingest_processes": processes})
    context = start_ingest_pool(build_context(settings))
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    with Progress(
        TextColumn("[bold]import"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("import", total=len(files))
        report = import_folder(
            context.bulk_ingest, files, on_done=lambda _p: progress.advance(task)
        )
    console.print(
        f"stored {report.stored}, already there {report.duplicates}, replaced {report.replaced}, "
        f"refused {len(report.refused)}"
    )
    for path, reason in list(report.refused.items())[:20]:
        err_console.print(f"  [yellow]{path}[/]: {reason}")
    if context.ingest_pool is not None:
        context.ingest_pool.close()
    context.database.dispose()
    if report.refused:
        raise typer.Exit(1)


def _users_database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    database.upgrade()
    return database


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[Role, typer.Option(help="radiologist, qa, ml_engineer or admin")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a login password from standard input")
    ] = False,
) -> None:
    """Add a user; its first API token is printed alone on the last line."""
    settings = _settings()
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    database = _users_database(settings)
    try:
        token = accounts.add_user(
            database=database, settings=settings, username=name, role=role, password=password
        )
    except UserError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    finally:
        database.dispose()
    console.print(
        f"user {name} ({role.value}) added; API token valid {settings.token_ttl_hours:g} h, "
        "shown once:"
    )
    typer.echo(token)


@users_app.command("token")
def users_token(name: str) -> None:
    """Issue another API token for a user, printed alone on the last line."""
    settings = _settings()
    database = _users_database(settings)
    try:
        token = accounts.issue_api_token(database=database, settings=settings, username=name)
    except UserError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    finally:
        database.dispose()
    console.print(f"new API token for {name}, valid {settings.token_ttl_hours:g} h, shown once:")
    typer.echo(token)


@users_app.command("list")
def users_list() -> None:
    """List the users and their roles."""
    settings = _settings()
    database = _users_database(settings)
    table = Table("user", "role", "password", "disabled", "created")
    for user in accounts.list_users(database=database):
        table.add_row(
            user.username,
            user.role,
            "yes" if user.has_password else "no",
            "yes" if user.disabled else "no",
            user.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    database.dispose()
    console.print(table)
