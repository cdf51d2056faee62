"""The openslide-python side of bench/slide_tiles.cpp: 256x256 tiles read at level 0 and turned
into RGB arrays, the way a Python tile data set's __getitem__ does it, in one process or a pool.

    /usr/bin/python3 bench/slide_tiles.py --processes 1 SLIDE TILES_TXT   (prints: tiles_per_s V)
TILES_TXT holds one "x y" pair of level-0 coordinates per line.
"""
import argparse
import multiprocessing
import time

import numpy as np
import openslide

SIZE = 256
_slide = None


def _open(path):
    global _slide
    _slide = openslide.OpenSlide(path)


def read(xy):
    region = _slide.read_region(xy, 0, (SIZE, SIZE)).convert("RGB")
    return int(np.asarray(region)[0, 0, 0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("slide")
    parser.add_argument("tiles")
    args = parser.parse_args()
    with open(args.tiles) as f:
        tiles = [tuple(int(v) for v in line.split()) for line in f if line.strip()]
    if args.processes == 1:
        _open(args.slide)
        start = time.perf_counter()
        for xy in tiles:
            read(xy)
        seconds = time.perf_counter() - start
    else:
        with multiprocessing.Pool(args.processes, initializer=_open, initargs=(args.slide,)) as pool:
            pool.map(read, tiles[: args.processes])  # workers started and slide opened
            start = time.perf_counter()
            pool.map(read, tiles, chunksize=16)
            seconds = time.perf_counter() - start
    print(f"tiles_per_s {len(tiles) / seconds:.2f}")


if __name__ == "__main__":
    main()
