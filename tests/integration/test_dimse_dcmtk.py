"""The archive driven by DCMTK's own tools, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from pacs_ai.dimse import nodes
from pacs_ai.server import Server
from tests.conftest import sample_path
from tests.factories import clone_series
from tests.integration.conftest import STORESCU_PROPOSAL, run_dcmtk, storescp, storescu

pytestmark = pytest.mark.integration


# getscu accepts a compressed syntax for its storage sub-operations only when asked.
GETSCU_PREFERENCE = {syntax: "+" + option[1:] for syntax, option in STORESCU_PROPOSAL.items()}
TRAILING_PADDING = 0xFFFCFFFC  # DCMTK drops it when it writes a file (PS3.10 7.2)


def same_object(a: Path, b: Path) -> bool:
    """Same dataset, element by element (file meta aside)."""
    first, second = dcmread(a), dcmread(b)
    for ds in (first, second):
        ds.pop(TRAILING_PADDING, None)
    syntax = first.file_meta.TransferSyntaxUID
    # Senders may convert between uncompressed syntaxes; compressed data must arrive as it was.
    return first == second and (
        not syntax.is_encapsulated or syntax == second.file_meta.TransferSyntaxUID
    )


def store(server: Server, *files: Path) -> None:
    for result in storescu(server.dimse_port, list(files)):
        assert result.returncode == 0, result.stderr


def test_echo(server: Server) -> None:
    result = run_dcmtk("echoscu", "-aec", "PACSAI", "127.0.0.1", str(server.dimse_port))
    assert result.returncode == 0, result.stderr


def test_store_every_transfer_syntax_then_find_and_get(
    server: Server, sample_files: dict[str, Path], tmp_path: Path
) -> None:
    store(server, *sample_files.values())
    found = run_dcmtk(
        "findscu",
        "-v",
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "StudyInstanceUID",
        "-k",
        "PatientName",
        "127.0.0.1",
        str(server.dimse_port),
    )
    assert found.returncode == 0, found.stderr
    expected_studies = {
        str(dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in sample_files.values()
    }
    assert found.stderr.count("Find Response:") == len(expected_studies)
    for path in sample_files.values():
        header = dcmread(path, stop_before_pixels=True)
        out = tmp_path / "get" / str(header.SOPInstanceUID)
        out.mkdir(parents=True)
        got = run_dcmtk(
            "getscu",
            GETSCU_PREFERENCE.get(str(header.file_meta.TransferSyntaxUID), "+x="),
            "-S",
            "-k",
            "QueryRetrieveLevel=IMAGE",
            "-k",
            f"StudyInstanceUID={header.StudyInstanceUID}",
            "-k",
            f"SeriesInstanceUID={header.SeriesInstanceUID}",
            "-k",
            f"SOPInstanceUID={header.SOPInstanceUID}",
            "-od",
            str(out),
            "127.0.0.1",
            str(server.dimse_port),
        )
        assert got.returncode == 0, got.stderr
        (received,) = out.iterdir()
        assert same_object(path, received)


def test_find_at_every_level_of_both_models(server: Server, tmp_path: Path) -> None:
    files = clone_series(sample_path("CT_small.dcm"), 5, tmp_path / "s", seed="find")
    store(server, *files)
    study_uid = str(dcmread(files[0]).StudyInstanceUID)
    series_uid = str(dcmread(files[0]).SeriesInstanceUID)
    queries = [
        ("-P", ["QueryRetrieveLevel=PATIENT", "PatientID=PID-find", "PatientName"], 1),
        ("-P", ["QueryRetrieveLevel=STUDY", "PatientID=PID-find", "StudyInstanceUID"], 1),
        ("-S", ["QueryRetrieveLevel=STUDY", "PatientID=PID-*", "StudyInstanceUID"], 1),
        (
            "-S",
            [
                "QueryRetrieveLevel=SERIES",
                f"StudyInstanceUID={study_uid}",
                "SeriesInstanceUID",
                "Modality=CT",
            ],
            1,
        ),
        (
            "-S",
            [
                "QueryRetrieveLevel=IMAGE",
                f"StudyInstanceUID={study_uid}",
                f"SeriesInstanceUID={series_uid}",
                "SOPInstanceUID",
                "InstanceNumber",
            ],
            5,
        ),
        (
            "-P",
            [
                "QueryRetrieveLevel=IMAGE",
                "PatientID=PID-find",
                "SOPInstanceUID",
                "InstanceNumber=3",
            ],
            1,
        ),
    ]
    for model, keys, expected in queries:
        args = [model]
        for key in keys:
            args += ["-k", key]
        result = run_dcmtk("findscu", "-v", *args, "127.0.0.1", str(server.dimse_port))
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("Find Response:") == expected, (keys, result.stderr)


def test_study_root_has_no_patient_level(server: Server) -> None:
    result = run_dcmtk(
        "findscu",
        "-v",
        "-S",
        "-k",
        "QueryRetrieveLevel=PATIENT",
        "-k",
        "PatientID",
        "127.0.0.1",
        str(server.dimse_port),
    )
    assert "Error: DataSetDoesNotMatchSOPClass" in result.stderr


def test_move_to_a_known_node_and_refuse_unknown(
    server: Server, sample_files: dict[str, Path], tmp_path: Path
) -> None:
    files = clone_series(sample_files["explicit_le"], 3, tmp_path / "src", seed="move")
    store(server, *files)
    study_uid = str(dcmread(files[0]).StudyInstanceUID)
    with storescp(tmp_path / "dest") as port:
        with server.context.database.write_sessions.begin() as session:
            nodes.create_or_update(session=session, ae_title="DEST", host="127.0.0.1", port=port)
        moved = run_dcmtk(
            "movescu",
            "-v",
            "-S",
            "-aem",
            "DEST",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study_uid}",
            "127.0.0.1",
            str(server.dimse_port),
        )
        assert moved.returncode == 0, moved.stderr
        received = sorted((tmp_path / "dest").iterdir())
        assert len(received) == 3
        by_uid = {str(dcmread(p).SOPInstanceUID): p for p in received}
        for path in files:
            assert same_object(path, by_uid[str(dcmread(path).SOPInstanceUID)])
    unknown = run_dcmtk(
        "movescu",
        "-v",
        "-S",
        "-aem",
        "NOBODY",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study_uid}",
        "127.0.0.1",
        str(server.dimse_port),
    )
    assert "Refused: MoveDestinationUnknown" in unknown.stderr


def test_conflicting_resend_gets_a_failure_status_with_reason(
    server: Server, tmp_path: Path
) -> None:
    store(server, sample_path("MR_small.dcm"))
    result = run_dcmtk(
        "storescu",
        "-v",
        "-R",
        "127.0.0.1",
        str(server.dimse_port),
        str(sample_path("MR_small_implicit.dcm")),
    )
    assert "Received Store Response (Error: CannotUnderstand" in result.stderr, result.stderr
    assert result.returncode != 0
    again = run_dcmtk(
        "storescu", "-R", "127.0.0.1", str(server.dimse_port), str(sample_path("MR_small.dcm"))
    )
    assert again.returncode == 0, again.stderr


def test_allow_list_of_calling_ae_titles(make_server: object) -> None:
    server = make_server(allowed_calling_aets=["GOODAE"])  # type: ignore[operator]
    good = run_dcmtk("echoscu", "-aet", "GOODAE", "127.0.0.1", str(server.dimse_port))
    bad = run_dcmtk("echoscu", "-aet", "BADAE", "127.0.0.1", str(server.dimse_port))
    assert good.returncode == 0, good.stderr
    assert bad.returncode != 0
    assert "Rejected" in bad.stderr or "rejected" in bad.stderr.lower()


def test_four_associations_at_once(
    server: Server, sample_files: dict[str, Path], tmp_path: Path
) -> None:
    import subprocess

    from tests.integration.conftest import dcmtk

    batches = [
        clone_series(sample_files["explicit_le"], 10, tmp_path / f"b{i}", seed=f"par{i}")
        for i in range(4)
    ]
    processes = [
        subprocess.Popen(
            [dcmtk("storescu"), "127.0.0.1", str(server.dimse_port), *map(str, batch)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for batch in batches
    ]
    for process in processes:
        assert process.wait(timeout=120) == 0
    found = run_dcmtk(
        "findscu",
        "-v",
        "-S",
        "-k",
        "QueryRetrieveLevel=IMAGE",
        "-k",
        "SOPInstanceUID",
        "127.0.0.1",
        str(server.dimse_port),
    )
    assert found.stderr.count("Find Response:") == 40
