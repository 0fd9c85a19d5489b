"""Pipeline files: the shipped ones load, bad ones are refused naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacs_ai.pipeline.definition import PipelineError, Rule, load_pipeline, load_pipelines

SHIPPED = Path(__file__).resolve().parents[3] / "pipelines"


def test_shipped_pipelines_load() -> None:
    pipelines = {p.name: p for p in load_pipelines(SHIPPED)}
    assert set(pipelines) == {"ct-head-hemorrhage", "cxr-pneumothorax"}
    ct = pipelines["ct-head-hemorrhage"]
    assert ct.model_name == "ct-head-hemorrhage" and ct.model_version is None
    assert ct.urgent and {o.value for o in ct.outputs} == {"sr", "seg"}
    assert ct.triage["SCT:1386000"].severity == "critical"
    assert pipelines["cxr-pneumothorax"].complete_at_instances == 1


def test_series_rules() -> None:
    ct = load_pipeline(SHIPPED / "ct-head-hemorrhage.yaml")
    head = {
        "Modality": "CT",
        "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
        "BodyPartExamined": "HEAD",
    }
    assert ct.series_matches(head, 40)
    assert not ct.series_matches(head, 8)  # too few slices
    assert not ct.series_matches({**head, "BodyPartExamined": "CHEST"}, 40)
    assert not ct.series_matches({**head, "Modality": "MR"}, 40)
    assert not ct.series_matches({"Modality": "CT"}, 40)  # a rule on a missing attribute fails


def test_rule_kinds() -> None:
    assert Rule(values=["CT", "MR"]).matches("MR")
    assert Rule(regex="(?i)axial").matches("Head AXIAL 5mm")
    assert Rule(min=2.5, max=5).matches("3.0") and not Rule(min=2.5).matches("1")
    assert not Rule(min=1).matches("not a number")


GOOD = "name: x\nversion: 1\nmatch: {Modality: CT}\nmodel: m@active\noutputs: [sr]\n"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD.replace("[sr]", "[pdf]"), "outputs"),
        (GOOD.replace("version: 1", "version: 0"), "version"),
        (GOOD.replace("{Modality: CT}", "{Modality: {regex: '('}}"), "match.Modality.regex"),
        (GOOD.replace("m@active", "no-version"), "model"),
        (GOOD + "triage: {ICH: {severity: critical, threshold: 0.5}}\n", "triage"),
        (GOOD + "colour: red\n", "colour"),
        ("- just\n- a list\n", "mapping"),
        ("name: [unclosed\n", "YAML"),
    ],
)
def test_bad_files_name_the_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError) as refused:
        load_pipeline(path)
    assert str(path) in str(refused.value)
    assert field in str(refused.value)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(PipelineError, match="two pipelines"):
        load_pipelines(tmp_path)
