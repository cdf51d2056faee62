"""PyTorch side of bench/scaling.cpp: SimCLR's step (bench/simclr_step.py's model, 3 bands,
32 px) as one process, or as N processes of DistributedDataParallel over Gloo on 127.0.0.1 with
the same global batch; prints "images_per_s=<value>" for the global batch.

What DDP does here is less than pretext's ranks do: batch norm and the negatives stay each rank's
own (PyTorch's SyncBatchNorm runs on GPUs only, and DDP gathers no embeddings), so per step it
communicates only the averaged gradients.
"""
import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from simclr_step import ResNet18Small, nt_xent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(rank, args, port):
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // args.ranks))
    if args.ranks > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=args.ranks)
    torch.manual_seed(0)
    encoder = ResNet18Small(3, args.width)
    model = nn.Sequential(encoder, nn.Linear(encoder.dim, encoder.dim, bias=False),
                          nn.BatchNorm1d(encoder.dim), nn.ReLU(inplace=True),
                          nn.Linear(encoder.dim, 128))
    if args.ranks > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rows = args.batch // args.ranks
    views = [torch.rand(rows, 3, args.size, args.size) for _ in range(2)]

    def step():
        z = model(torch.cat(views))
        loss = nt_xent(z[:rows], z[rows:], 0.2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    if args.ranks > 1:
        dist.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if args.ranks > 1:
        dist.barrier()
    elapsed = time.perf_counter() - start
    if rank == 0:
        print(f"images_per_s={args.batch * args.steps / elapsed:.1f}", flush=True)
    if args.ranks > 1:
        dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64, help="global batch")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    if args.ranks == 1:
        run(0, args, 0)
    else:
        mp.spawn(run, args=(args, free_port()), nprocs=args.ranks)


if __name__ == "__main__":
    main()
