"""Small pure DICOM helpers shared by every part: status codes, UIDs, code sets."""
