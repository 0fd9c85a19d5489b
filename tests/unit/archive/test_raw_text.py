"""Text read straight from raw bytes equals what pydicom's conversion gives, or is not used."""

from __future__ import annotations

from io import BytesIO

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pacs_ai.archive.header import _plain_codec, _text

# keyword -> VR, one of each kind ingest reads
FIELDS = {
    "StudyDate": "DA",
    "StudyTime": "TM",
    "Modality": "CS",
    "SeriesNumber": "IS",
    "PatientAge": "AS",
    "PatientID": "LO",
    "AccessionNumber": "SH",
    "PatientName": "PN",
}
# character set -> the highest code point its text may hold
CHARSETS: dict[str | None, int] = {
    None: 126,
    "ISO_IR 100": 0xFF,
    "ISO_IR 192": 0x2FFF,
    "ISO 2022 IR 87": 126,
}


def text(highest: int) -> st.SearchStrategy[str]:
    return st.text(
        st.characters(min_codepoint=32, max_codepoint=highest, blacklist_categories=("Cs",)),
        max_size=16,
    )


def written(values: dict[str, str], charset: str | None, syntax: str) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    if charset is not None:
        ds.SpecificCharacterSet = charset
    for keyword, value in values.items():
        ds.add_new(keyword, FIELDS[keyword], value)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    charset=st.sampled_from(list(CHARSETS)),
    syntax=st.sampled_from([ExplicitVRLittleEndian, ImplicitVRLittleEndian]),
)
def test_raw_bytes_give_what_pydicom_gives(
    data: st.DataObject, charset: str | None, syntax: str
) -> None:
    ascii_values = data.draw(
        st.fixed_dictionaries(
            {
                k: st.from_regex(r" ?([+-]?[0-9]{1,8})? ?", fullmatch=True)  # writable IS only
                if FIELDS[k] == "IS"
                else text(126)
                for k in list(FIELDS)[:5]
            }
        )
    )
    text_values = data.draw(
        st.fixed_dictionaries({k: text(CHARSETS[charset]) for k in list(FIELDS)[5:]})
    )
    try:
        data_bytes = written({**ascii_values, **text_values}, charset, syntax)
    except Exception:  # pydicom cannot encode it: no such object can arrive either
        assume(False)
    fresh = dcmread(BytesIO(data_bytes))
    converted = dcmread(BytesIO(data_bytes))
    for keyword in FIELDS:
        _ = converted[keyword].value  # converted by pydicom: _text takes its slow path
    codec = _plain_codec(fresh)
    assert (codec is None) == (charset == "ISO 2022 IR 87")
    for keyword in FIELDS:
        assert _text(fresh, keyword, 64, codec) == _text(converted, keyword, 64), keyword
