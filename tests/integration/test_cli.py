"""The pacs-ai command line against both databases: db upgrade, nodes, import."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select
from typer.testing import CliRunner

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import Instance, RemoteNode
from pacs_ai.cli import app
from tests.conftest import sample_path
from tests.factories import clone_series

pytestmark = pytest.mark.integration
runner = CliRunner()


def env_for(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {"PACS_AI_DATA_DIR": str(tmp_path / "data"), "PACS_AI_DATABASE_URL": database_url}


def test_db_upgrade_creates_the_schema(tmp_path: Path, database_url: str) -> None:
    result = runner.invoke(app, ["db", "upgrade"], env=env_for(tmp_path, database_url))
    assert result.exit_code == 0, result.output
    database = Database(database_url)
    try:
        assert {"patient", "study", "series", "instance", "remote_node"} <= set(
            inspect(database.engine).get_table_names()
        )
    finally:
        database.dispose()


def test_nodes_add_list_remove(tmp_path: Path, database_url: str) -> None:
    env = env_for(tmp_path, database_url)
    assert runner.invoke(app, ["nodes", "add", "VIEWER", "10.1.2.3", "104"], env=env).exit_code == 0
    assert (
        runner.invoke(app, ["nodes", "add", "VIEWER", "10.1.2.4", "11112"], env=env).exit_code == 0
    )
    listed = runner.invoke(app, ["nodes", "list"], env=env)
    assert "VIEWER" in listed.output and "10.1.2.4" in listed.output
    bad = runner.invoke(app, ["nodes", "add", "WAY-TOO-LONG-AE-TITLE", "h", "104"], env=env)
    assert bad.exit_code == 2
    assert runner.invoke(app, ["nodes", "remove", "VIEWER"], env=env).exit_code == 0
    assert runner.invoke(app, ["nodes", "remove", "VIEWER"], env=env).exit_code == 2
    database = Database(database_url)
    with database.sessions() as session:
        assert session.execute(select(func.count()).select_from(RemoteNode)).scalar_one() == 0
    database.dispose()


@pytest.mark.parametrize("processes", ["0", "2"])
def test_import_folder_reports_what_it_did(
    tmp_path: Path, database_url: str, processes: str
) -> None:
    folder = tmp_path / "incoming"
    clone_series(sample_path("CT_small.dcm"), 5, folder / "a", seed="import")
    (folder / "notes.txt").write_text("not DICOM")
    result = runner.invoke(
        app,
        ["import", str(folder), "--processes", processes],
        env=env_for(tmp_path, database_url),
    )
    assert result.exit_code == 1  # one file refused
    assert "stored 5" in result.output and "refused 1" in result.output
    again = runner.invoke(app, ["import", str(folder / "a")], env=env_for(tmp_path, database_url))
    assert again.exit_code == 0
    assert "already there 5" in again.output
    database = Database(database_url)
    with database.sessions() as session:
        assert session.execute(select(func.count()).select_from(Instance)).scalar_one() == 5
    database.dispose()
