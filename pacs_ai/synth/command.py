"""``pacs-ai synth``: generate synthetic studies, write them, and optionally C-STORE them.

The main CLI registers :func:`synth` as a command. Files are always written first (to
``--out``, or to a temporary folder when only ``--send`` is given), then sent over one
association with :func:`pacs_ai.dimse.scu.send_files`, so a failed send can be repeated from
the folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from pacs_ai.dimse.scu import send_files
from pacs_ai.synth.batch import generate_planned, plan_batch
from pacs_ai.synth.study import write_study

console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _generate(
    out: Path,
    *,
    ct_head: int,
    cxr: int,
    seed: int,
    positive_share: float,
    slices: int,
    size: int,
    cxr_size: int,
) -> tuple[list[Path], int]:
    """Write the batch below ``out``; the DICOM files and the number of positive studies."""
    plans = plan_batch(seed, ct_head=ct_head, cxr=cxr, positive_share=positive_share)
    paths: list[Path] = []
    with _progress() as progress:
        task = progress.add_task("Generating", total=len(plans))
        for plan in plans:
            study = generate_planned(plan, slices=slices, ct_size=size, cxr_size=cxr_size)
            paths.extend(write_study(study, out))
            progress.advance(task)
    return paths, sum(plan.positive for plan in plans)


def _send(paths: list[Path], host: str, port: int, *, called_ae: str, calling_ae: str) -> None:
    with _progress() as progress:
        task = progress.add_task(f"Sending to {host}:{port}", total=len(paths))
        report = send_files(
            paths,
            host,
            port,
            called_ae=called_ae,
            calling_ae=calling_ae,
            on_sent=lambda _path: progress.advance(task),
        )
    if report.failed:
        for path, reason in list(report.failed.items())[:10]:
            console.print(f"[red]not sent[/red] {path.name}: {reason}")
        console.print(f"[red]{len(report.failed)} of {len(paths)} files not sent[/red]")
        raise typer.Exit(code=1)
    console.print(f"sent {len(report.sent)} files to {called_ae}@{host}:{port}")


def synth(
    ct_head: Annotated[
        int, typer.Option("--ct-head", min=0, help="Number of CT head studies (hemorrhage).")
    ] = 0,
    cxr: Annotated[
        int, typer.Option("--cxr", min=0, help="Number of chest radiographs (pneumothorax).")
    ] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            file_okay=False,
            help="Folder for the Part 10 files (study/series/sop.dcm) and truth.json/mask.npy.",
        ),
    ] = None,
    send: Annotated[
        tuple[str, int] | None,
        typer.Option(
            "--send", metavar="HOST PORT", help="C-STORE the studies to this peer when written."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same files.")] = 0,
    positive_share: Annotated[
        float,
        typer.Option(
            "--positive-share", min=0.0, max=1.0, help="Share of each kind with the finding."
        ),
    ] = 0.3,
    slices: Annotated[int, typer.Option("--slices", min=1, help="Slices per CT head.")] = 40,
    size: Annotated[
        int, typer.Option("--size", min=16, help="Rows and columns of CT slices.")
    ] = 512,
    cxr_size: Annotated[
        int, typer.Option("--cxr-size", min=64, help="Rows and columns of chest radiographs.")
    ] = 1024,
    called_ae: Annotated[
        str, typer.Option("--called-ae", help="AE title of the peer for --send.")
    ] = "ANY-SCP",
    calling_ae: Annotated[
        str, typer.Option("--calling-ae", help="Our AE title for --send.")
    ] = "PACSAI",
) -> None:
    """Generate synthetic CT head and chest X-ray studies with ground truth beside them."""
    if out is None and send is None:
        raise typer.BadParameter("give --out, --send, or both", param_hint="--out / --send")
    if ct_head + cxr == 0:
        raise typer.BadParameter("nothing to generate", param_hint="--ct-head / --cxr")
    with tempfile.TemporaryDirectory(prefix="pacs-ai-synth-") as scratch:
        folder = out if out is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        paths, positives = _generate(
            folder,
            ct_head=ct_head,
            cxr=cxr,
            seed=seed,
            positive_share=positive_share,
            slices=slices,
            size=size,
            cxr_size=cxr_size,
        )
        where = str(folder) if out is not None else "a temporary folder"
        console.print(
            f"{ct_head + cxr} studies ({positives} positive), {len(paths)} files in {where}"
        )
        if send is not None:
            _send(paths, send[0], send[1], called_ae=called_ae, calling_ae=calling_ae)
