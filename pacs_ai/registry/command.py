"""``pacs-ai models``: list, register, validate and change the state of model versions.

The main CLI mounts :data:`models_app`. torch and MONAI are imported by the commands that
need them, not at import, so that the rest of the CLI starts without them.

Every refusal (a bundle with missing files, a config that does not parse, weights changed
since registration, a network that cannot take its declared input) prints
``error: <what is wrong>`` on stderr and exits with status 2.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from pacs_ai.archive.db import Database
from pacs_ai.config import Settings
from pacs_ai.registry.errors import BundleError, RegistryError
from pacs_ai.registry.schema import ModelState

if TYPE_CHECKING:
    from pacs_ai.registry.validate import ValidationReport

models_app = typer.Typer(
    help="Model registry: MONAI bundles and their registered versions.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

ByOption = Annotated[
    str, typer.Option("--by", help="Who makes the change (default: the login name)")
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, kept in the history")]


def _default_actor(value: str) -> str:
    return value or getpass.getuser()


@contextmanager
def _database() -> Iterator[Database]:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(name)s: %(message)s")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    try:
        database.upgrade()
        yield database
    finally:
        database.dispose()


def _refusing(action: Callable[[], T]) -> T:
    """Run ``action``; a refusal becomes ``error: ...`` on stderr and exit status 2."""
    try:
        return action()
    except (BundleError, RegistryError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc


def _print_report(report: ValidationReport) -> None:
    table = Table("tensor", "shape", "dtype", "min", "max", title=f"{report.name} {report.version}")
    for check in (*report.inputs, *report.outputs):
        table.add_row(
            check.key, str(check.shape), check.dtype, f"{check.minimum:.4g}", f"{check.maximum:.4g}"
        )
    console.print(table)
    peak = "process lifetime peak" if report.peak_is_lifetime else "peak during inference"
    console.print(
        f"weights sha256 {report.weights_sha256}\n"
        f"activation {report.activation or 'none'}; load {report.load_s:.2f} s; "
        f"latency p50 {report.latency_p50_ms:.1f} ms over {len(report.latencies_ms)} runs; "
        f"RSS {report.rss_after_load_mb:.0f} MiB after load, {report.peak_rss_mb:.0f} MiB {peak}",
        highlight=False,
    )


@models_app.command("list")
def list_models() -> None:
    """List registered versions, and bundles found in models_dirs that are not registered."""
    from pacs_ai.registry import service
    from pacs_ai.registry.bundle import discover, read_bundle

    settings = Settings()
    with _database() as database, database.sessions() as session:
        versions = service.list_all(session=session)
        table = Table("name", "version", "state", "weights sha256", "changed", "by", "path")
        registered = set()
        for v in versions:
            registered.add(Path(v.path))
            table.add_row(
                v.name,
                v.version,
                v.state,
                v.weights_sha256[:12],
                v.state_changed_at.strftime("%Y-%m-%d %H:%M"),
                v.state_changed_by,
                v.path,
            )
    for path in discover(settings.models_dirs):
        if path in registered:
            continue
        try:
            bundle = read_bundle(path)
            table.add_row(bundle.name, bundle.version, "unregistered", "", "", "", str(path))
        except BundleError as exc:
            table.add_row(path.name, "", "unreadable", "", "", "", escape(str(exc)))
    console.print(table)


@models_app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="Bundle folder")],
    runs: Annotated[int, typer.Option(min=1, help="Timed forward passes")] = 3,
) -> None:
    """Load a bundle, run it on synthetic input of its declared shape, check its outputs."""
    from pacs_ai.registry import service
    from pacs_ai.registry.bundle import read_bundle

    bundle = _refusing(lambda: read_bundle(path))
    with _database() as database, database.sessions() as session:
        report, registered = _refusing(
            lambda: service.validate(session=session, bundle=bundle, runs=runs)
        )
    _print_report(report)
    status = f"registered, {registered.state}" if registered else "not registered"
    console.print(f"[green]valid[/] ({status})")


@models_app.command("register")
def register(
    path: Annotated[Path, typer.Argument(help="Bundle folder")],
    by: ByOption = "",
    reason: ReasonOption = "",
) -> None:
    """Validate a bundle and register it as an inactive version, with its weights' sha256."""
    from pacs_ai.registry import service
    from pacs_ai.registry.bundle import read_bundle

    bundle = _refusing(lambda: read_bundle(path))

    def work(session: Session) -> tuple[str, ValidationReport]:
        version, report = service.register(
            session=session, bundle=bundle, actor=_default_actor(by), reason=reason
        )
        return f"{version.name} {version.version}", report

    with _database() as database, database.write_sessions.begin() as session:
        label, report = _refusing(lambda: work(session))
    _print_report(report)
    console.print(f"registered {label} (inactive)")


def _change_state(name: str, version: str, state: ModelState, by: str, reason: str) -> None:
    from pacs_ai.registry import service

    def work(session: Session) -> None:
        found = service.get_by_name_version_or_raise(session=session, name=name, version=version)
        service.set_state(
            session=session,
            model_version=found,
            state=state,
            actor=_default_actor(by),
            reason=reason,
        )

    with _database() as database, database.write_sessions.begin() as session:
        _refusing(lambda: work(session))
    console.print(f"{name} {version} is now {state.value}")


@models_app.command("activate")
def activate(name: str, version: str, by: ByOption = "", reason: ReasonOption = "") -> None:
    """Make a version the one whose findings reach the worklist (the previous one is retired)."""
    _change_state(name, version, ModelState.ACTIVE, by, reason)


@models_app.command("shadow")
def shadow(name: str, version: str, by: ByOption = "", reason: ReasonOption = "") -> None:
    """Run a version on live studies and keep its results, without effect on the worklist."""
    _change_state(name, version, ModelState.SHADOW, by, reason)


@models_app.command("deactivate")
def deactivate(name: str, version: str, by: ByOption = "", reason: ReasonOption = "") -> None:
    """Stop running a version; it stays registered."""
    _change_state(name, version, ModelState.INACTIVE, by, reason)


@models_app.command("rollback")
def rollback(name: str, by: ByOption = "", reason: ReasonOption = "") -> None:
    """Make the version that was active before the current one active again."""
    from pacs_ai.registry import service

    def work(session: Session) -> tuple[str, str | None]:
        restored, replaced = service.rollback(
            session=session, name=name, actor=_default_actor(by), reason=reason
        )
        return restored.version, replaced.version if replaced is not None else None

    with _database() as database, database.write_sessions.begin() as session:
        restored, replaced = _refusing(lambda: work(session))
    console.print(
        f"{name} {restored} is active again" + (f" (replacing {replaced})" if replaced else "")
    )
