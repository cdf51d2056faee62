"""Golden values for pretext's DICOM corpus test, computed independently with pydicom (and GDCM).

For every *.dcm file of a folder: whether pydicom decodes its pixels and, if so, the min, mean and
max of what pretext must produce: stored values with BitsStored and the sign honoured, the
Modality LUT or rescale applied, padding pixels (PixelPaddingValue / PixelPaddingRangeLimit)
left out, MONOCHROME1 inverted over the range the stored values map to, YBR_FULL(_422) converted
to RGB. Also the identifying values each file holds, which pretext must never print.

    /usr/bin/python3 tests/golden/dicom_corpus.py FOLDER OUT.json
"""
import glob
import json
import os
import sys
import warnings

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut, convert_color_space

IDENTIFYING = ["PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs",
               "InstitutionName", "InstitutionAddress", "ReferringPhysicianName",
               "PerformingPhysicianName", "OperatorsName", "AccessionNumber",
               "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyID"]


def identifiers(ds):
    found = set()
    for keyword in IDENTIFYING:
        value = ds.get(keyword)
        if value is None:
            continue
        for text in (value if isinstance(value, pydicom.multival.MultiValue) else [value]):
            text = str(text).strip()
            # Short values ("M", "1") and the standard's own UIDs identify nobody.
            if len(text) >= 4 and not text.startswith("1.2.840.10008."):
                found.add(text)
    return sorted(found)


def stored_values(arr, bits, signed):
    """Stored values as the standard defines them: BitsStored bits, two's complement if signed."""
    arr = arr.astype(np.int64) & ((1 << bits) - 1)
    if signed:
        arr = np.where(arr >= (1 << (bits - 1)), arr - (1 << bits), arr)
    return arr


def expected(ds):
    # The header as the file states it: decoding may rewrite some of it.
    bits = int(ds.BitsStored)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    arr = ds.pixel_array  # may change ds.PhotometricInterpretation to what the decoder produced
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if samples == 1:
        stored = stored_values(arr, bits, signed)
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
        ends = np.asarray(apply_modality_lut(np.arange(low, high + 1) if bits <= 16
                                             else np.array([low, high]), ds), dtype=np.float64)
        if photometric == "MONOCHROME1":
            values = ends.min() + ends.max() - values
        valid = np.ones(stored.shape, dtype=bool)
        if "PixelPaddingValue" in ds:
            pad = int(ds.PixelPaddingValue)
            limit = int(ds.get("PixelPaddingRangeLimit", pad))
            valid = (stored < min(pad, limit)) | (stored > max(pad, limit))
        values = values[valid]
    else:
        values = arr.astype(np.float64)
        if photometric in ("YBR_FULL", "YBR_FULL_422"):
            values = convert_color_space(arr, photometric, "RGB").astype(np.float64)
    out = {"frames": frames, "photometric": photometric}
    if values.size:
        out.update(min=float(values.min()), mean=float(values.mean()), max=float(values.max()))
    else:
        out.update(padding_only=True)
    return out


def main(folder, out_path):
    warnings.simplefilter("ignore")
    files = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.dcm"))):
        name = os.path.basename(path)
        entry = {"decoded": False, "identifiers": []}
        try:
            ds = pydicom.dcmread(path)
            entry["identifiers"] = identifiers(ds)
            entry["has_pixels"] = "PixelData" in ds
            if entry["has_pixels"]:
                entry.update(expected(ds))
                entry["decoded"] = True
        except Exception as error:  # pydicom refuses the file: pretext must refuse it clearly
            entry["pydicom"] = f"{type(error).__name__}: {error}"[:200]
        files[name] = entry
    with open(out_path, "w") as out:
        json.dump({"pydicom": pydicom.__version__, "files": files}, out, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
