"""The rasterio side of bench/raster_windows.cpp: 256x256 windows of 4 bands read and turned into
float32 arrays with each band's scale applied, the way a Python raster data set's __getitem__ does
it, in one process or a pool. GDAL's block cache is sized as on the pretext side.

    /usr/bin/python3 bench/raster_windows.py --processes 1 --cache-mb 256 RASTER WINDOWS_TXT
(prints: windows_per_s V). WINDOWS_TXT holds one "x y" pair of pixel offsets per line.
"""
import argparse
import multiprocessing
import time

import numpy as np
import rasterio
from rasterio.windows import Window

SIZE = 256
_raster = None
_scales = None


def _open(path, cache_mb):
    global _raster, _scales, _env
    _env = rasterio.Env(GDAL_CACHEMAX=cache_mb)
    _env.__enter__()
    _raster = rasterio.open(path)
    _scales = np.asarray(_raster.scales, np.float32).reshape(-1, 1, 1)


def read(xy):
    pixels = _raster.read(window=Window(xy[0], xy[1], SIZE, SIZE)).astype(np.float32) * _scales
    return float(pixels[0, 0, 0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--cache-mb", type=int, default=256)
    parser.add_argument("raster")
    parser.add_argument("windows")
    args = parser.parse_args()
    with open(args.windows) as f:
        windows = [tuple(int(v) for v in line.split()) for line in f if line.strip()]
    if args.processes == 1:
        _open(args.raster, args.cache_mb)
        start = time.perf_counter()
        for xy in windows:
            read(xy)
        seconds = time.perf_counter() - start
    else:
        with multiprocessing.Pool(args.processes, initializer=_open,
                                  initargs=(args.raster, args.cache_mb)) as pool:
            pool.map(read, windows[: args.processes])  # workers started and raster opened
            start = time.perf_counter()
            pool.map(read, windows, chunksize=16)
            seconds = time.perf_counter() - start
    print(f"windows_per_s {len(windows) / seconds:.2f}")


if __name__ == "__main__":
    main()
