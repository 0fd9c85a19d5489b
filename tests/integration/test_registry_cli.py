"""``pacs-ai models`` against both databases: the ML engineer's whole round, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from alembic import command
from monai.networks.nets import UNet
from sqlalchemy import inspect
from typer.testing import CliRunner

from pacs_ai.archive.db import Database, alembic_config
from pacs_ai.cli import app
from pacs_ai.registry import service
from tests.unit.registry.bundles import edit_json, make_spleen_bundle, make_tiny_bundle

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "PACS_AI_DATA_DIR": str(tmp_path / "data"),
        "PACS_AI_DATABASE_URL": database_url,
        "PACS_AI_MODELS_DIRS": str(tmp_path / "models"),
    }


def models(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["models", *args], env={**env, "COLUMNS": "300"})
    return result.exit_code, result.stdout, result.stderr


def listed_states(table: str) -> dict[tuple[str, str], str]:
    """(name, version) -> state from the rows of ``models list``."""
    rows = [[cell.strip() for cell in line.split("│")] for line in table.splitlines()]
    return {(row[1], row[2]): row[3] for row in rows if len(row) > 4 and row[2][:1].isdigit()}


def test_register_activate_shadow_deactivate(tmp_path: Path, env: dict[str, str]) -> None:
    zoo = make_spleen_bundle(tmp_path / "models")
    first = make_tiny_bundle(tmp_path / "models", version="1.0.0")
    second = make_tiny_bundle(tmp_path / "models", version="1.1.0", seed=1)

    code, out, _ = models(env, "list")
    assert code == 0
    assert out.count("unregistered") == 3 and "spleen_ct_segmentation" in out

    code, out, err = models(env, "register", str(zoo), "--by", "ann", "--reason", "zoo 0.5.9")
    assert code == 0, err
    assert "registered spleen_ct_segmentation 0.5.9 (inactive)" in out
    assert "(1, 2, 96, 96, 96)" in out and "softmax" in out and "latency p50" in out
    for path in (first, second):
        assert models(env, "register", str(path), "--by", "ann")[0] == 0

    assert models(env, "activate", "tiny-seg", "1.0.0", "--by", "bob", "--reason", "ok")[0] == 0
    code, out, _ = models(env, "shadow", "tiny-seg", "1.1.0", "--by", "bob")
    assert (code, out.strip()) == (0, "tiny-seg 1.1.0 is now shadow")
    code, out, _ = models(env, "list")
    assert code == 0 and "unregistered" not in out
    assert listed_states(out) == {
        ("spleen_ct_segmentation", "0.5.9"): "inactive",
        ("tiny-seg", "1.0.0"): "active",
        ("tiny-seg", "1.1.0"): "shadow",
    }

    assert models(env, "activate", "tiny-seg", "1.1.0", "--by", "bob")[0] == 0
    code, out, _ = models(env, "rollback", "tiny-seg", "--by", "bob", "--reason", "worse")
    assert (code, out.strip()) == (0, "tiny-seg 1.0.0 is active again (replacing 1.1.0)")
    assert models(env, "activate", "tiny-seg", "1.1.0", "--by", "bob")[0] == 0
    assert models(env, "deactivate", "tiny-seg", "1.1.0", "--by", "bob")[0] == 0
    code, _, err = models(env, "rollback", "spleen_ct_segmentation")
    assert code == 2 and "no earlier active version" in err

    database = Database(env["PACS_AI_DATABASE_URL"])
    try:
        with database.sessions() as session:
            by_version = {(v.name, v.version): v for v in service.list_all(session=session)}
            assert {k: v.state for k, v in by_version.items()} == {
                ("spleen_ct_segmentation", "0.5.9"): "inactive",
                ("tiny-seg", "1.0.0"): "inactive",
                ("tiny-seg", "1.1.0"): "inactive",
            }
            history = [
                (c.to_state, c.actor, c.reason) for c in by_version[("tiny-seg", "1.0.0")].changes
            ]
            assert history == [
                ("inactive", "ann", ""),
                ("active", "bob", "ok"),
                ("inactive", "bob", "replaced by version 1.1.0"),
                ("active", "bob", "rollback: worse"),
                ("inactive", "bob", "replaced by version 1.1.0"),
            ]
            assert by_version[("spleen_ct_segmentation", "0.5.9")].changes[0].reason == "zoo 0.5.9"
    finally:
        database.dispose()


def test_refusals_name_the_problem(tmp_path: Path, env: dict[str, str]) -> None:
    root = tmp_path / "models"
    missing = make_tiny_bundle(root, name="missing")
    (missing / "models" / "model.pt").unlink()
    code, _, err = models(env, "register", str(missing))
    assert code == 2 and "missing models/model.pt" in err

    broken = make_tiny_bundle(root, name="broken")
    (broken / "configs" / "inference.json").write_text('{"network_def": ')
    code, _, err = models(env, "validate", str(broken))
    assert code == 2 and "inference.json is not valid JSON" in err

    wrong_input = make_tiny_bundle(root, name="wrong-input")
    edit_json(
        wrong_input / "configs" / "metadata.json",
        lambda m: m["network_data_format"]["inputs"]["image"].update(num_channels=4),
    )
    code, _, err = models(env, "register", str(wrong_input))
    assert code == 2 and "cannot take the declared input 'image'" in err

    logits = make_tiny_bundle(root, name="logits")
    network = UNet(3, 1, 2, (4, 8), (2,), num_res_units=0)
    with torch.no_grad():
        network.model[-1].conv.bias.fill_(5.0)  # type: ignore[union-attr,index,operator]
    torch.save(network.state_dict(), logits / "models" / "model.pt")
    edit_json(logits / "configs" / "inference.json", lambda c: c.pop("postprocessing"))
    code, _, err = models(env, "validate", str(logits))
    assert code == 2 and "outside the declared value_range [0, 1]" in err

    good = make_tiny_bundle(root, name="good")
    assert models(env, "register", str(good))[0] == 0
    code, out, _ = models(env, "validate", str(good))
    assert code == 0 and "registered, inactive" in out
    torch.manual_seed(9)
    torch.save(
        UNet(3, 1, 2, (4, 8), (2,), num_res_units=0).state_dict(), good / "models" / "model.pt"
    )
    code, _, err = models(env, "validate", str(good))
    assert code == 2 and "changed since registration" in err
    code, _, err = models(env, "activate", "good", "1.0.0")
    assert code == 2 and "cannot activate" in err and "changed since registration" in err
    code, _, err = models(env, "activate", "good", "7.0.0")
    assert code == 2 and "good version 7.0.0 is not registered" in err
    code, _, err = models(env, "register", str(good))
    assert code == 2 and "already registered" in err

    code, out, _ = models(env, "list")
    assert code == 0 and "unreadable" in out and "broken" in out


def test_registry_tables_downgrade_and_upgrade(database_url: str) -> None:
    database = Database(database_url)
    try:
        database.upgrade()
        assert {"model_version", "model_state_change"} <= set(
            inspect(database.engine).get_table_names()
        )
        command.downgrade(alembic_config(database_url), "0002")
        database.engine.dispose()
        assert "model_version" not in inspect(database.engine).get_table_names()
        database.upgrade()
        database.engine.dispose()
        assert "model_version" in inspect(database.engine).get_table_names()
    finally:
        database.dispose()


def test_metadata_is_kept_as_json(tmp_path: Path, env: dict[str, str]) -> None:
    bundle = make_tiny_bundle(tmp_path / "models")
    assert models(env, "register", str(bundle))[0] == 0
    database = Database(env["PACS_AI_DATABASE_URL"])
    try:
        with database.sessions() as session:
            (version,) = service.list_all(session=session)
            stored = version.bundle_metadata
    finally:
        database.dispose()
    on_disk = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert stored["metadata"] == on_disk
    assert stored["pacs_ai"]["resources"] == {"num_cpus": 1.0, "num_gpus": 0.0, "memory_mb": 256}
