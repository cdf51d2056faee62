"""PyTorch side of bench/simclr_step.cpp: the same SimCLR training step in Python.

Run by the C++ benchmark with the same arguments; prints one line "images_per_s=<value>".
The model mirrors pretext's ResNet (torchvision layout, small stem, widths 64*m per stage) and
projection head; the step is forward of both views, NT-Xent, backward, SGD.
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet18Small(nn.Module):
    def __init__(self, in_channels, width):
        super().__init__()
        widths = [max(1, round(64 * width * 2 ** s)) for s in range(4)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for s, w in enumerate(widths):
            layers.append(nn.Sequential(Block(cin, w, 1 if s == 0 else 2), Block(w, w, 1)))
            cin = w
        self.layers = nn.Sequential(*layers)
        self.dim = cin

    def forward(self, x):
        return self.layers(F.relu(self.bn1(self.conv1(x)))).mean((2, 3))


def nt_xent(z1, z2, temperature):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.t() / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    targets = (torch.arange(2 * n) + n) % (2 * n)
    return F.cross_entropy(logits, targets)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--channels-last", action="store_true",
                        help="NHWC model and inputs, as pretext's trainer runs them")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = ResNet18Small(1, args.width)
    projector = nn.Sequential(nn.Linear(encoder.dim, encoder.dim, bias=False),
                              nn.BatchNorm1d(encoder.dim), nn.ReLU(inplace=True),
                              nn.Linear(encoder.dim, 128))
    params = list(encoder.parameters()) + list(projector.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    views = [torch.rand(args.batch, 1, args.size, args.size) for _ in range(2)]
    if args.channels_last:
        encoder = encoder.to(memory_format=torch.channels_last)
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]

    def step():
        z = projector(encoder(torch.cat(views)))  # one forward: BatchNorm sees both views
        loss = nt_xent(z[:args.batch], z[args.batch:], 0.2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    elapsed = time.perf_counter() - start
    print(f"images_per_s={args.batch * args.steps / elapsed:.1f}")


if __name__ == "__main__":
    main()
