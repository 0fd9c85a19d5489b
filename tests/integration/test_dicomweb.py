"""DICOMweb against a running server, on SQLite and on PostgreSQL: STOW, QIDO, WADO."""

from __future__ import annotations

import io
from dataclasses import dataclass

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from pacs_ai.security.roles import Role
from tests.integration.conftest_dicomweb import (
    LiveServer,
    live_server,
    multipart_body,
    split_multipart,
    with_new_uids,
)

pytestmark = pytest.mark.integration
__all__ = ["live_server"]

DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'
OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"


@dataclass
class StoredStudy:
    """A study stored at the start of the module: its UIDs and the bytes sent."""

    study_uid: str
    patient_id: str
    files: dict[str, bytes]

    def ds(self, name: str) -> pydicom.Dataset:
        """The dataset sent under ``name``."""
        return pydicom.dcmread(io.BytesIO(self.files[name]))

    def path(self, name: str) -> str:
        """``studies/../series/../instances/..`` of one instance."""
        ds = self.ds(name)
        return (
            f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}"
        )


def _http(live: LiveServer, role: Role = Role.ADMIN) -> httpx.Client:
    return httpx.Client(base_url=live.dicomweb + "/", headers=live.headers(role), timeout=30)


@pytest.fixture(scope="module")
def study(live_server: LiveServer) -> StoredStudy:
    study_uid = generate_uid()
    series_uid = generate_uid()
    patient = f"PID-{study_uid[-6:]}"
    common = {"study_uid": study_uid, "PatientID": patient, "PatientName": "Doe^Jane"}
    files = {
        "ct": with_new_uids("CT_small.dcm", series_uid=series_uid, **common),
        "ct2": with_new_uids("CT_small.dcm", series_uid=series_uid, InstanceNumber=2, **common),
        "mr": with_new_uids("MR_small.dcm", Modality="MR", **common),
        "jpeg": with_new_uids("SC_rgb_jpeg_dcmtk.dcm", **common),
        "rgb": with_new_uids("SC_rgb_small_odd.dcm", **common),
        "multiframe": with_new_uids("examples_ybr_color.dcm", **common),
        "rle2": with_new_uids("SC_rgb_rle_2frame.dcm", **common),
        "lossless": with_new_uids("SC_rgb_jpeg_gdcm.dcm", **common),
        "mono1": with_new_uids("CT_small.dcm", PhotometricInterpretation="MONOCHROME1", **common),
    }
    body, content_type = multipart_body(list(files.values()))
    with _http(live_server, Role.ML_ENGINEER) as client:
        answer = client.post("studies", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/dicom+json"
    stored = answer.json()
    referenced = stored["00081199"]["Value"]
    assert len(referenced) == len(files)
    assert stored["00081190"]["Value"] == [f"{live_server.dicomweb}/studies/{study_uid}"]
    for item in referenced:
        url = item["00081190"]["Value"][0]
        assert url.startswith(f"{live_server.dicomweb}/studies/{study_uid}/series/")
        assert url.endswith(item["00081155"]["Value"][0])
    return StoredStudy(study_uid, patient, files)


# --- STOW-RS -----------------------------------------------------------------------------


def test_stow_with_dicomweb_client_and_search_it(live_server: LiveServer) -> None:
    ds = pydicom.dcmread(io.BytesIO(with_new_uids("MR_small.dcm", PatientID="DWC-1")))
    client = live_server.client(Role.ML_ENGINEER)
    response = client.store_instances([ds])
    assert response.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    found = client.search_for_studies(search_filters={"PatientID": "DWC-1"})
    assert [f["0020000D"]["Value"][0] for f in found] == [ds.StudyInstanceUID]
    back = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert np.array_equal(back.pixel_array, ds.pixel_array)


def test_stow_identical_again_is_success_and_conflict_is_0111(
    live_server: LiveServer, study: StoredStudy
) -> None:
    again, content_type = multipart_body([study.files["ct"]])
    changed_ds = study.ds("ct")
    changed_ds.PatientName = "Changed^Name"
    out = io.BytesIO()
    changed_ds.save_as(out, enforce_file_format=True)
    conflict, conflict_type = multipart_body([out.getvalue()])
    with _http(live_server) as client:
        same = client.post("studies", content=again, headers={"Content-Type": content_type})
        clash = client.post("studies", content=conflict, headers={"Content-Type": conflict_type})
    assert same.status_code == 200
    assert clash.status_code == 409
    failed = clash.json()["00081198"]["Value"][0]
    assert failed["00081197"]["Value"] == [0x0111]
    assert failed["00081155"]["Value"] == [changed_ds.SOPInstanceUID]


def test_stow_partial_failure_is_202_and_nothing_of_the_bad_part_is_kept(
    live_server: LiveServer,
) -> None:
    good = with_new_uids("CT_small.dcm", PatientID="PARTIAL")
    truncated = with_new_uids("MR_small.dcm", PatientID="PARTIAL")[:-500]
    body, content_type = multipart_body([good, b"this is not DICOM", truncated])
    with _http(live_server, Role.ML_ENGINEER) as client:
        answer = client.post("studies", content=body, headers={"Content-Type": content_type})
        found = client.get("instances", params={"PatientID": "PARTIAL"}).json()
    assert answer.status_code == 202
    reasons = [f["00081197"]["Value"][0] for f in answer.json()["00081198"]["Value"]]
    assert reasons == [0xC000, 0xC000]
    assert len(answer.json()["00081199"]["Value"]) == 1
    assert len(found) == 1


def test_stow_to_a_study_refuses_other_studies(live_server: LiveServer) -> None:
    target = generate_uid()
    other = with_new_uids("CT_small.dcm")
    mine = with_new_uids("CT_small.dcm", study_uid=target)
    body, content_type = multipart_body([other, mine])
    other_uid = pydicom.dcmread(io.BytesIO(other)).StudyInstanceUID
    with _http(live_server, Role.ML_ENGINEER) as client:
        answer = client.post(
            f"studies/{target}", content=body, headers={"Content-Type": content_type}
        )
        lonely = client.get("studies", params={"StudyInstanceUID": other_uid}).json()
        kept = client.get("studies", params={"StudyInstanceUID": target}).json()
    assert answer.status_code == 202
    failed = answer.json()["00081198"]["Value"][0]
    assert failed["00081197"]["Value"] == [0xA900]
    assert answer.json()["00081190"]["Value"] == [f"{live_server.dicomweb}/studies/{target}"]
    assert lonely == []
    assert len(kept) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"--b\r\n\r\nxx", 'multipart/related; type="application/dicom"; boundary=b', 400),
        (b"nothing here", 'multipart/related; type="application/dicom"; boundary=b', 400),
        (b"--b--\r\n", 'multipart/related; type="application/dicom"; boundary=b', 400),
        (b"{}", "application/json", 415),
        (b"--b--", 'multipart/related; type="application/dicom+json"; boundary=b', 415),
        (b"--b--", 'multipart/related; type="application/dicom"', 400),
    ],
)
def test_stow_malformed_requests_are_4xx_with_a_reason(
    live_server: LiveServer, body: bytes, content_type: str, status: int
) -> None:
    with _http(live_server) as client:
        answer = client.post("studies", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == status
    assert answer.json()["error"]


def test_stow_over_the_size_limit_is_413_and_stores_nothing(live_server: LiveServer) -> None:
    settings = live_server.server.context.settings
    limit = settings.max_request_bytes
    part = with_new_uids("CT_small.dcm", PatientID="TOO-BIG")
    body, content_type = multipart_body([part])
    settings.max_request_bytes = len(body) - 1
    try:
        with _http(live_server) as client:
            declared = client.post("studies", content=body, headers={"Content-Type": content_type})
            chunked = client.post(
                "studies",
                content=iter([body[:1000], body[1000:]]),
                headers={"Content-Type": content_type},
            )
            found = client.get("studies", params={"PatientID": "TOO-BIG"}).json()
    finally:
        settings.max_request_bytes = limit
    assert declared.status_code == 413
    assert chunked.status_code == 413
    assert "limit" in chunked.json()["error"]
    assert found == []


# --- QIDO-RS -----------------------------------------------------------------------------


def _values(items: list[dict], tag: str) -> list:
    return [item[tag]["Value"][0] for item in items if "Value" in item.get(tag, {})]


def test_ohif_study_list_query(live_server: LiveServer, study: StoredStudy) -> None:
    url = (
        f"{live_server.dicomweb}/studies?limit=101&offset=0&fuzzymatching=false"
        f"&includefield=00081030%2C00080060%2C00080090%2C00100030&00100020={study.patient_id}"
    )
    answer = httpx.get(url, headers=live_server.headers(Role.RADIOLOGIST))
    assert answer.status_code == 200
    (found,) = answer.json()
    assert found["0020000D"]["Value"] == [study.study_uid]
    assert found["00100010"]["Value"] == [{"Alphabetic": "Doe^Jane"}]
    modalities = {study.ds(name).Modality for name in study.files}
    assert sorted(found["00080061"]["Value"]) == sorted(modalities)
    assert found["00201208"]["Value"] == [len(study.files)]
    assert found["00080056"]["Value"] == ["ONLINE"]
    assert found["00081190"]["Value"] == [f"{live_server.dicomweb}/studies/{study.study_uid}"]
    assert "00081030" in found and "00100030" in found


def test_search_by_name_wildcard_percent_encoded_and_fuzzy(
    live_server: LiveServer, study: StoredStudy
) -> None:
    base = f"{live_server.dicomweb}/studies?PatientID={study.patient_id}"
    headers = live_server.headers(Role.QA)
    exact = httpx.get(base + "&PatientName=Doe%5EJane", headers=headers).json()
    wildcard = httpx.get(base + "&PatientName=do*", headers=headers).json()
    fuzzy = httpx.get(base + "&PatientName=jan&fuzzymatching=true", headers=headers).json()
    miss = httpx.get(base + "&PatientName=Smith*", headers=headers).json()
    assert len(exact) == len(wildcard) == len(fuzzy) == 1
    assert miss == []


def test_search_levels_and_paths(live_server: LiveServer, study: StoredStudy) -> None:
    ct = study.ds("ct")
    with _http(live_server, Role.RADIOLOGIST) as client:
        series = client.get(f"studies/{study.study_uid}/series", params={"includefield": "all"})
        all_series = client.get("series", params={"StudyInstanceUID": study.study_uid})
        modality = client.get("series", params={"PatientID": study.patient_id, "Modality": "CT"})
        study_instances = client.get(f"studies/{study.study_uid}/instances")
        series_instances = client.get(
            f"studies/{study.study_uid}/series/{ct.SeriesInstanceUID}/instances"
        )
        by_class = client.get(
            "instances", params={"PatientID": study.patient_id, "00080016": ct.SOPClassUID}
        )
    assert series.status_code == 200
    assert len(series.json()) == len(study.files) - 1  # the two CTs share a series
    assert len(all_series.json()) == len(series.json())
    assert "00100020" in all_series.json()[0]  # all-series searches return study attributes
    ct_series = {study.ds(n).SeriesInstanceUID for n in study.files if study.ds(n).Modality == "CT"}
    assert sorted(_values(modality.json(), "0020000E")) == sorted(ct_series)
    assert len(study_instances.json()) == len(study.files)
    assert sorted(_values(series_instances.json(), "00080018")) == sorted(
        [ct.SOPInstanceUID, study.ds("ct2").SOPInstanceUID]
    )
    assert set(_values(by_class.json(), "00080016")) == {ct.SOPClassUID}
    retrieve_url = series_instances.json()[0]["00081190"]["Value"][0]
    assert retrieve_url.startswith(f"{live_server.dicomweb}/studies/{study.study_uid}/series/")


def test_paging_with_limit_and_offset(live_server: LiveServer, study: StoredStudy) -> None:
    with _http(live_server) as client:
        pages = [
            client.get(
                f"studies/{study.study_uid}/instances", params={"limit": 4, "offset": offset}
            )
            for offset in (0, 4, 8)
        ]
    uids = [uid for page in pages for uid in _values(page.json(), "00080018")]
    assert [len(p.json()) for p in pages] == [4, 4, len(study.files) - 8]
    assert len(set(uids)) == len(study.files)
    assert "offset=4" in pages[0].headers["warning"]
    assert "warning" not in pages[2].headers


def test_search_by_date_range(live_server: LiveServer, study: StoredStudy) -> None:
    date = study.ds("ct").StudyDate
    with _http(live_server) as client:
        hit = client.get("studies", params={"StudyDate": f"{date}-", "PatientID": study.patient_id})
        miss = client.get(
            "studies", params={"StudyDate": "-19000101", "PatientID": study.patient_id}
        )
    assert len(hit.json()) == 1
    assert miss.json() == []


@pytest.mark.parametrize(
    "query",
    [
        "limit=-1",
        "limit=abc",
        "offset=-5",
        "offset=99999999999999999999999",
        "StudyDate=2020-13-45x",
        "StudyDate=notadate",
        "NoSuchKeyword=1",
        "fuzzymatching=maybe",
        "StudyInstanceUID=1.2.abc",
        "includefield=NotAnAttribute",
        "PatientID=%00",
    ],
)
def test_bad_queries_are_400(live_server: LiveServer, query: str) -> None:
    answer = httpx.get(f"{live_server.dicomweb}/studies?{query}", headers=live_server.headers())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]


def test_unsupported_attribute_is_ignored_with_a_warning(live_server: LiveServer) -> None:
    answer = httpx.get(
        f"{live_server.dicomweb}/studies?PatientWeight=70&limit=1", headers=live_server.headers()
    )
    assert answer.status_code == 200
    assert answer.headers["warning"].startswith("299 pacs-ai")
    assert "PatientWeight" in answer.headers["warning"]


def test_limit_above_the_maximum_is_capped_with_a_warning(live_server: LiveServer) -> None:
    answer = httpx.get(
        f"{live_server.dicomweb}/studies?limit=100000000", headers=live_server.headers()
    )
    assert answer.status_code == 200
    assert "maximum" in answer.headers["warning"]


def test_empty_result_is_200_with_an_empty_array(live_server: LiveServer) -> None:
    answer = httpx.get(
        f"{live_server.dicomweb}/studies?PatientID=NOBODY-AT-ALL", headers=live_server.headers()
    )
    assert answer.status_code == 200
    assert answer.json() == []


@pytest.mark.parametrize(
    "path",
    [
        "studies/1.2.3.abc/series",
        "studies/01.2/series",
        "studies/1.2.3/series/not-a-uid/instances",
        "studies/1.2.3/series/1.2/instances/1.2/frames/0",
        "studies/1.2.3/series/1.2/instances/1.2/frames/one",
    ],
)
def test_invalid_path_parameters_are_400(live_server: LiveServer, path: str) -> None:
    answer = httpx.get(f"{live_server.dicomweb}/{path}", headers=live_server.headers())
    assert answer.status_code == 400
    assert answer.json()["error"]


# --- WADO-RS -----------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [DICOM_ANY, 'multipart/related; type="application/dicom"'])
def test_retrieve_instance_is_byte_exact(
    live_server: LiveServer, study: StoredStudy, accept: str
) -> None:
    for name in ("ct", "jpeg", "multiframe"):
        with _http(live_server, Role.RADIOLOGIST) as client:
            answer = client.get(study.path(name), headers={"Accept": accept})
        assert answer.status_code == 200
        ((headers, content),) = split_multipart(answer.content, answer.headers["content-type"])
        syntax = study.ds(name).file_meta.TransferSyntaxUID
        assert headers["content-type"] == f"application/dicom; transfer-syntax={syntax}"
        assert content == study.files[name]


def test_retrieve_study_and_series_stream_every_instance(
    live_server: LiveServer, study: StoredStudy
) -> None:
    ct = study.ds("ct")
    with _http(live_server) as client:
        whole = client.get(f"studies/{study.study_uid}", headers={"Accept": DICOM_ANY})
        series = client.get(
            f"studies/{study.study_uid}/series/{ct.SeriesInstanceUID}",
            headers={"Accept": DICOM_ANY},
        )
    sent = sorted(study.files.values())
    assert (
        sorted(c for _h, c in split_multipart(whole.content, whole.headers["content-type"])) == sent
    )
    in_series = [c for _h, c in split_multipart(series.content, series.headers["content-type"])]
    assert sorted(in_series) == sorted([study.files["ct"], study.files["ct2"]])


def test_dicomweb_client_retrieves_series(live_server: LiveServer, study: StoredStudy) -> None:
    ct = study.ds("ct")
    got = live_server.client(Role.QA).retrieve_series(study.study_uid, ct.SeriesInstanceUID)
    assert sorted(d.SOPInstanceUID for d in got) == sorted(
        [ct.SOPInstanceUID, study.ds("ct2").SOPInstanceUID]
    )


def test_a_transfer_syntax_not_stored_is_406(live_server: LiveServer, study: StoredStudy) -> None:
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    with _http(live_server) as client:
        refused = client.get(study.path("ct"), headers={"Accept": accept})
        served = client.get(study.path("jpeg"), headers={"Accept": accept})
        wrong_type = client.get(study.path("ct"), headers={"Accept": "text/html"})
    assert refused.status_code == 406
    assert "does not transcode" in refused.json()["error"]
    assert served.status_code == 200
    assert wrong_type.status_code == 406


def test_unknown_objects_are_404(live_server: LiveServer, study: StoredStudy) -> None:
    with _http(live_server) as client:
        assert client.get(f"studies/{generate_uid()}").status_code == 404
        assert client.get(f"studies/{study.study_uid}/series/1.2.3/metadata").status_code == 404


def test_metadata_has_bulk_data_uris_that_resolve(
    live_server: LiveServer, study: StoredStudy
) -> None:
    ct = study.ds("ct")
    with _http(live_server, Role.RADIOLOGIST) as client:
        study_md = client.get(f"studies/{study.study_uid}/metadata")
        series_md = client.get(f"studies/{study.study_uid}/series/{ct.SeriesInstanceUID}/metadata")
        (instance_md,) = client.get(study.path("ct") + "/metadata").json()
        pixel_uri = instance_md["7FE00010"]["BulkDataURI"]
        bulk = client.get(pixel_uri, headers={"Accept": OHIF_FRAMES})
    assert study_md.headers["content-type"] == "application/dicom+json"
    assert len(study_md.json()) == len(study.files)
    assert len(series_md.json()) == 2
    assert instance_md["00080018"]["Value"] == [ct.SOPInstanceUID]
    assert instance_md["00083002"]["Value"] == [ct.file_meta.TransferSyntaxUID]
    assert "Value" not in instance_md["7FE00010"] and "InlineBinary" not in instance_md["7FE00010"]
    assert pixel_uri == f"{live_server.dicomweb}/{study.path('ct')}/bulkdata/7FE00010"
    ((_headers, content),) = split_multipart(bulk.content, bulk.headers["content-type"])
    assert content == ct.PixelData


def test_native_frames_are_the_pixel_bytes(live_server: LiveServer, study: StoredStudy) -> None:
    ct = study.ds("ct")
    with _http(live_server, Role.QA) as client:
        answer = client.get(study.path("ct") + "/frames/1", headers={"Accept": OHIF_FRAMES})
        default = client.get(
            study.path("ct") + "/frames/1",
            headers={"Accept": 'multipart/related; type="application/octet-stream"'},
        )
    ((headers, content),) = split_multipart(answer.content, answer.headers["content-type"])
    assert headers["content-type"] == (
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    )
    assert content == ct.PixelData
    assert default.status_code == 200


def test_compressed_frames_are_the_stored_bitstreams(
    live_server: LiveServer, study: StoredStudy
) -> None:
    ds = study.ds("multiframe")
    expected = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    with _http(live_server) as client:
        one = client.get(study.path("multiframe") + "/frames/1", headers={"Accept": OHIF_FRAMES})
        several = client.get(
            study.path("multiframe") + "/frames/7,2,30", headers={"Accept": OHIF_FRAMES}
        )
        as_jpeg = client.get(
            study.path("multiframe") + "/frames/3",
            headers={"Accept": 'multipart/related; type="image/jpeg"'},
        )
        uncompressed_asked = client.get(
            study.path("multiframe") + "/frames/1",
            headers={"Accept": 'multipart/related; type="application/octet-stream"'},
        )
        beyond = client.get(
            study.path("multiframe") + "/frames/31", headers={"Accept": OHIF_FRAMES}
        )
    ((headers, content),) = split_multipart(one.content, one.headers["content-type"])
    assert headers["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.4.50")
    assert content == expected[0]
    parts = split_multipart(several.content, several.headers["content-type"])
    assert [c for _h, c in parts] == [expected[6], expected[1], expected[29]]
    ((jpeg_headers, jpeg),) = split_multipart(as_jpeg.content, as_jpeg.headers["content-type"])
    assert jpeg_headers["content-type"].startswith("image/jpeg")
    assert jpeg == expected[2]
    assert uncompressed_asked.status_code == 406
    assert beyond.status_code == 404


def test_rle_frames(live_server: LiveServer, study: StoredStudy) -> None:
    ds = study.ds("rle2")
    expected = list(generate_frames(ds.PixelData, number_of_frames=2))
    with _http(live_server) as client:
        answer = client.get(study.path("rle2") + "/frames/2", headers={"Accept": OHIF_FRAMES})
    ((_headers, content),) = split_multipart(answer.content, answer.headers["content-type"])
    assert content == expected[1]


def _image(answer: httpx.Response) -> Image.Image:
    assert answer.status_code == 200, answer.text
    return Image.open(io.BytesIO(answer.content))


def test_rendered_images_decode(live_server: LiveServer, study: StoredStudy) -> None:
    with _http(live_server, Role.RADIOLOGIST) as client:
        ct_png = _image(client.get(study.path("ct") + "/rendered", headers={"Accept": "image/png"}))
        ct_jpeg = _image(client.get(study.path("ct") + "/rendered"))
        rgb = _image(client.get(study.path("jpeg") + "/rendered", params={"accept": "image/png"}))
        frame = _image(client.get(study.path("multiframe") + "/frames/5/rendered"))
        rle = _image(client.get(study.path("rle2") + "/frames/2/rendered"))
        thumb = _image(client.get(study.path("mr") + "/thumbnail", params={"viewport": "32,32"}))
        default_thumb = _image(client.get(study.path("multiframe") + "/thumbnail"))
    assert (ct_png.format, ct_png.mode, ct_png.size) == ("PNG", "L", (128, 128))
    assert ct_jpeg.format == "JPEG"
    assert (rgb.mode, rgb.size) == ("RGB", (100, 100))
    assert frame.size == (320, 240)
    assert rle.mode == "RGB"
    assert max(thumb.size) == 32
    assert max(default_thumb.size) == 128


def test_rendering_applies_the_window(live_server: LiveServer, study: StoredStudy) -> None:
    ct = study.ds("ct")
    hu = ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
    low, high = np.percentile(hu, 5), np.percentile(hu, 95)
    with _http(live_server) as client:
        narrow = np.asarray(
            _image(
                client.get(
                    study.path("ct") + "/rendered",
                    params={"window": f"{(low + high) / 2},{high - low},linear"},
                    headers={"Accept": "image/png"},
                )
            )
        )
        bad = client.get(study.path("ct") + "/rendered", params={"window": "40,0"})
    expected = np.clip(((hu - ((low + high) / 2 - 0.5)) / (high - low - 1) + 0.5) * 255, 0, 255)
    assert np.abs(narrow.astype(float) - expected).max() <= 1.0
    assert bad.status_code == 400


def test_monochrome1_is_inverted(live_server: LiveServer, study: StoredStudy) -> None:
    png = {"Accept": "image/png"}
    with _http(live_server) as client:
        mono2 = np.asarray(_image(client.get(study.path("ct") + "/rendered", headers=png)))
        mono1 = np.asarray(_image(client.get(study.path("mono1") + "/rendered", headers=png)))
    assert mono2.std() > 10
    assert np.array_equal(mono1, 255 - mono2)


def test_undecodable_pixels_are_422_not_500(live_server: LiveServer, study: StoredStudy) -> None:
    with _http(live_server) as client:
        answer = client.get(study.path("lossless") + "/rendered")
        frames = client.get(study.path("lossless") + "/frames/1", headers={"Accept": OHIF_FRAMES})
    assert answer.status_code == 422
    assert "1.2.840.10008.1.2.4.70" in answer.json()["error"]
    assert frames.status_code == 200  # the stored bitstream needs no decoding


def test_urls_follow_forwarded_headers_from_a_trusted_proxy(
    live_server: LiveServer, study: StoredStudy
) -> None:
    forwarded = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "pacs.example.org",
        "X-Forwarded-Prefix": "/archive",
    }
    with _http(live_server) as client:
        answer = client.get(
            "studies", params={"StudyInstanceUID": study.study_uid}, headers=forwarded
        )
        hostile = client.get(
            "studies",
            params={"StudyInstanceUID": study.study_uid},
            headers={"X-Forwarded-Host": "evil.example/path", "X-Forwarded-Prefix": "/a b"},
        )
    url = answer.json()[0]["00081190"]["Value"][0]
    assert url == f"https://pacs.example.org/archive/dicom-web/studies/{study.study_uid}"
    assert hostile.json()[0]["00081190"]["Value"][0].startswith(live_server.url + "/dicom-web/")
