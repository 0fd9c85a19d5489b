"""Registry services on SQLite and PostgreSQL: versions, states, history, digests."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from monai.networks.nets import UNet
from sqlalchemy.exc import IntegrityError

from pacs_ai.archive.db import Database
from pacs_ai.registry import service
from pacs_ai.registry.bundle import read_bundle
from pacs_ai.registry.errors import BundleError, RegistryError
from pacs_ai.registry.schema import ModelState, ModelStateChange, ModelVersion
from tests.unit.registry.bundles import edit_json, make_tiny_bundle


def register(database: Database, path: Path, actor: str = "mle") -> int:
    with database.write_sessions.begin() as session:
        version, report = service.register(
            session=session, bundle=read_bundle(path), actor=actor, reason="first"
        )
        assert version.weights_sha256 == report.weights_sha256
        return version.id


def change(
    database: Database, name: str, version: str, state: ModelState, reason: str = ""
) -> None:
    with database.write_sessions.begin() as session:
        found = service.get_by_name_version_or_raise(session=session, name=name, version=version)
        service.set_state(
            session=session, model_version=found, state=state, actor="mle", reason=reason
        )


def states(database: Database) -> dict[str, str]:
    with database.sessions() as session:
        return {v.version: v.state for v in service.list_all(session=session, name="tiny-seg")}


def test_register_records_the_digest_and_who(database: Database, tmp_path: Path) -> None:
    pk = register(database, make_tiny_bundle(tmp_path))
    with database.sessions() as session:
        version = service.get(session=session, pk=pk)
        assert version is not None
        assert (version.name, version.version, version.state) == ("tiny-seg", "1.0.0", "inactive")
        assert len(version.weights_sha256) == 64 and version.registered_by == "mle"
        assert version.bundle_metadata["pacs_ai"]["finding"]["code_value"] == "1386000"
        assert version.bundle_metadata["metadata"]["version"] == "1.0.0"
        (history,) = version.changes
        assert (history.from_state, history.to_state, history.reason) == ("", "inactive", "first")
        assert service.get_by_name_version(session=session, name="tiny-seg", version="9") is None


def test_a_version_is_registered_once(database: Database, tmp_path: Path) -> None:
    path = make_tiny_bundle(tmp_path)
    register(database, path)
    with pytest.raises(RegistryError, match="already registered"):
        register(database, path)
    with database.sessions() as session:
        assert len(service.list_all(session=session)) == 1


def test_activation_replaces_the_active_version(database: Database, tmp_path: Path) -> None:
    register(database, make_tiny_bundle(tmp_path, version="1.0.0"))
    register(database, make_tiny_bundle(tmp_path, version="1.1.0", seed=1))
    change(database, "tiny-seg", "1.0.0", ModelState.ACTIVE, "validated on site data")
    change(database, "tiny-seg", "1.1.0", ModelState.SHADOW, "try on live traffic")
    assert states(database) == {"1.0.0": "active", "1.1.0": "shadow"}
    change(database, "tiny-seg", "1.1.0", ModelState.ACTIVE, "shadow results agree")
    assert states(database) == {"1.0.0": "inactive", "1.1.0": "active"}
    with database.sessions() as session:
        active = service.get_active(session=session, name="tiny-seg")
        assert active is not None and active.version == "1.1.0"
        assert active.state_reason == "shadow results agree" and active.state_changed_by == "mle"
        old = service.get_by_name_version_or_raise(
            session=session, name="tiny-seg", version="1.0.0"
        )
        assert [(c.from_state, c.to_state) for c in old.changes] == [
            ("", "inactive"),
            ("inactive", "active"),
            ("active", "inactive"),
        ]
        assert old.changes[-1].reason == "replaced by version 1.1.0"
        assert [v.version for v in service.list_running(session=session)] == ["1.1.0"]
    change(database, "tiny-seg", "1.1.0", ModelState.INACTIVE)
    assert states(database) == {"1.0.0": "inactive", "1.1.0": "inactive"}


def test_the_database_allows_one_active_version_per_name(
    database: Database, tmp_path: Path
) -> None:
    first = register(database, make_tiny_bundle(tmp_path, version="1.0.0"))
    second = register(database, make_tiny_bundle(tmp_path, version="2.0.0", seed=2))
    other = register(database, make_tiny_bundle(tmp_path, name="other", version="1.0.0"))
    with database.write_sessions.begin() as session:
        session.execute(
            sa.update(ModelVersion)
            .where(ModelVersion.id.in_([first, other]))
            .values(state="active")
        )
    with pytest.raises(IntegrityError), database.write_sessions.begin() as session:
        session.execute(
            sa.update(ModelVersion).where(ModelVersion.id == second).values(state="active")
        )
    with pytest.raises(IntegrityError), database.write_sessions.begin() as session:
        session.execute(sa.update(ModelVersion).where(ModelVersion.id == second).values(state="on"))


def test_same_state_and_unknown_versions_are_refused(database: Database, tmp_path: Path) -> None:
    register(database, make_tiny_bundle(tmp_path))
    with pytest.raises(RegistryError, match="already inactive"):
        change(database, "tiny-seg", "1.0.0", ModelState.INACTIVE)
    with pytest.raises(
        RegistryError, match=r"version 2\.0 is not registered; registered versions: 1\.0\.0"
    ):
        change(database, "tiny-seg", "2.0", ModelState.ACTIVE)


def test_changed_weights_block_activation_and_loading(database: Database, tmp_path: Path) -> None:
    path = make_tiny_bundle(tmp_path)
    register(database, path)
    torch.manual_seed(5)
    torch.save(
        UNet(3, 1, 2, (4, 8), (2,), num_res_units=0).state_dict(), path / "models" / "model.pt"
    )
    with pytest.raises(RegistryError, match=r"cannot activate: .*changed since registration"):
        change(database, "tiny-seg", "1.0.0", ModelState.ACTIVE)
    assert states(database) == {"1.0.0": "inactive"}
    with database.sessions() as session:
        version = service.get_by_name_version_or_raise(
            session=session, name="tiny-seg", version="1.0.0"
        )
        with pytest.raises(BundleError, match="changed since registration"):
            service.load(model_version=version)
        with pytest.raises(BundleError, match="changed since registration"):
            service.validate(session=session, bundle=read_bundle(path), runs=1)


def test_a_folder_that_now_holds_another_version_is_refused(
    database: Database, tmp_path: Path
) -> None:
    path = make_tiny_bundle(tmp_path)
    register(database, path)
    edit_json(path / "configs" / "metadata.json", lambda m: m.update(version="1.0.1"))
    with pytest.raises(RegistryError, match=r"now holds tiny-seg 1\.0\.1, not the registered"):
        change(database, "tiny-seg", "1.0.0", ModelState.ACTIVE)


def test_load_gives_a_runnable_model(database: Database, tmp_path: Path) -> None:
    register(database, make_tiny_bundle(tmp_path))
    with database.sessions() as session:
        version = service.get_by_name_version_or_raise(
            session=session, name="tiny-seg", version="1.0.0"
        )
        model = service.load(model_version=version)
    out = model.forward(torch.rand(1, 1, 16, 16, 16))
    assert out.shape == (1, 2, 16, 16, 16)
    with database.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ModelStateChange)) == 1
