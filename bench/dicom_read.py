"""The pydicom side of bench/dicom_read.cpp: DICOM slices read and converted to Hounsfield-unit
float32 arrays, the way a Python data set's __getitem__ does it, in one process or a pool.

    /usr/bin/python3 bench/dicom_read.py --processes 1 FILE...   (prints: slices_per_s <value>)
"""
import argparse
import multiprocessing
import time

import numpy as np
import pydicom


def read_hu(path):
    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array.astype(np.float32)
    return pixels * float(dataset.get("RescaleSlope", 1)) + float(dataset.get("RescaleIntercept", 0))


def checksum(path):
    return float(read_hu(path).sum())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.processes == 1:
        start = time.perf_counter()
        for path in args.files:
            read_hu(path)
        seconds = time.perf_counter() - start
    else:
        with multiprocessing.Pool(args.processes) as pool:
            pool.map(checksum, args.files[: args.processes])  # start the workers first
            start = time.perf_counter()
            pool.map(checksum, args.files, chunksize=8)
            seconds = time.perf_counter() - start
    print(f"slices_per_s {len(args.files) / seconds:.2f}")


if __name__ == "__main__":
    main()
