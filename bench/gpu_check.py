"""PyTorch half of bench/gpu_check.cpp: the training step of pretext's methods in plain PyTorch.

    python3 bench/gpu_check.py --model {simclr_resnet50,dino_vits16,mae_vits16}
        --precision {fp32,tf32,bf16} --size 224 --batch 32 --steps 10 --device cuda [--threads N]

Builds the model pretext builds with its default options (SimCLR on ResNet-50, DINO on ViT-S/16
without local crops, MAE on ViT-S/16 with mean pooling), times `--steps` SGD steps after 3 of
warm-up and prints "images_per_s=<value>" (source images, not views) and "peak_mib=<value>"
(peak allocated device memory; 0 on the CPU) on lines of their own. Only `torch` is needed; it
also runs on the CPU with torch 1.13, at toy sizes, for the test suite.
"""
import argparse
import copy
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin, cout, kernel, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout))


class Bottleneck(nn.Module):
    """torchvision's v1.5 bottleneck (the stride on the 3x3), as methods/resnet.cpp."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = 4 * planes
        self.a, self.b = conv_bn(cin, planes, 1), conv_bn(planes, planes, 3, stride)
        self.c = conv_bn(planes, cout, 1)
        self.downsample = (conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout
                           else nn.Identity())

    def forward(self, x):
        return F.relu(self.c(F.relu(self.b(F.relu(self.a(x))))) + self.downsample(x))


class ResNet50(nn.Module):
    """ResNetOptions(50): 7x7 stem, max-pool, 3-4-6-3 bottlenecks, global mean: [B, 2048]."""

    def __init__(self):
        super().__init__()
        layers, cin = [conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
        for s, blocks in enumerate([3, 4, 6, 3]):
            for b in range(blocks):
                layers.append(Bottleneck(cin, 64 << s, 2 if s > 0 and b == 0 else 1))
                cin = 4 * (64 << s)
        self.body, self.dim = nn.Sequential(*layers), cin

    def forward(self, x):
        return self.body(x).mean((2, 3))


def nt_xent(z1, z2, temperature):
    """methods/losses.cpp: each view's positive is the other view of its image."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = torch.mm(z, z.t()) / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), -math.inf)
    positives = (torch.arange(2 * n, device=z.device) + n) % (2 * n)
    return F.cross_entropy(logits, positives)


class SimClr(nn.Module):
    """SimClrOptions(): a 2-layer head 2048-2048(BN, ReLU)-128, temperature 0.2."""

    def __init__(self):
        super().__init__()
        self.backbone = ResNet50()
        d = self.backbone.dim
        self.projector = nn.Sequential(nn.Linear(d, d, bias=False), nn.BatchNorm1d(d),
                                       nn.ReLU(inplace=True), nn.Linear(d, 128))

    def forward(self, views):
        n = views[0].shape[0]
        z = self.projector(self.backbone(torch.cat(views)))  # BatchNorm sees all 2N images
        return nt_xent(z[:n], z[n:], 0.2)


def attention(q, k, v):
    """base/torch_compat.h: the fused kernel from PyTorch 2.0, the plain product before."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    return ((q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)).softmax(-1) @ v


class Block(nn.Module):
    """Pre-norm transformer block with one qkv projection and an exact-GELU MLP (timm's)."""

    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def attend(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(b, n, d))

    def forward(self, x):
        x = x + self.attend(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """ViTOptions().image_size(size): ViT-S/16, 384 wide, 12 blocks of 6 heads, MLP 1536, learned
    positions. forward pools the class token (pool "cls"); MAE runs the pieces without one."""

    def __init__(self, size, class_token=True, dim=384, depth=12, heads=6):
        super().__init__()
        self.prefix, self.dim = int(class_token), dim
        self.proj = nn.Conv2d(3, dim, 16, 16)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if class_token else None
        self.pos_embed = nn.Parameter(torch.randn(1, self.prefix + (size // 16) ** 2, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, 4 * dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)  # "norm" for pool cls, "fc_norm" for mean

    def patch_tokens(self, images):
        return self.proj(images).flatten(2).transpose(1, 2) + self.pos_embed[:, self.prefix:]

    def prefix_tokens(self, batch):
        if self.cls_token is None:  # pretext concatenates an empty prefix all the same
            return self.pos_embed.new_zeros(batch, 0, self.dim)
        return (self.cls_token + self.pos_embed[:, :1]).expand(batch, -1, -1)

    def run_blocks(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, images):
        patches = self.patch_tokens(images)
        x = self.run_blocks(torch.cat([self.prefix_tokens(images.shape[0]), patches], 1))
        return self.norm(x[:, 0])


class DinoHead(nn.Module):
    """384-2048-2048-256 (GELU, no BN), L2-normalised, then a weight-normalised 256-4096 layer
    whose gain stays 1 (norm_last_layer)."""

    def __init__(self, in_dim, out_dim=4096, hidden=2048, bottleneck=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, bottleneck))
        self.last_v = nn.Parameter(torch.randn(out_dim, bottleneck) * 0.02)
        self.last_g = nn.Parameter(torch.ones(out_dim, 1), requires_grad=False)

    def forward(self, features):
        x = F.normalize(self.mlp(features), dim=-1)
        return x @ (self.last_g * self.last_v / self.last_v.norm(2, 1, keepdim=True)).t()


def dino_loss(student, teacher, center, student_temp=0.1, teacher_temp=0.04, views=2):
    """methods/dino.cpp: each global view's teacher target against every other view."""
    log_student = F.log_softmax(student / student_temp, -1).chunk(views)
    targets = F.softmax((teacher - center) / teacher_temp, -1).detach().chunk(views)
    total, pairs = torch.zeros((), dtype=student.dtype, device=student.device), 0
    for t in range(views):
        for v in range(views):
            if v != t:
                total, pairs = total + (-targets[t] * log_student[v]).sum(-1).mean(), pairs + 1
    return total / pairs


class Dino(nn.Module):
    """DinoOptions().local_crops(0): a student and an EMA teacher (ViT-S/16 and head each)."""

    def __init__(self, size):
        super().__init__()
        self.student, self.student_head = ViT(size), DinoHead(384)
        self.teacher = copy.deepcopy(self.student)
        self.teacher_head = copy.deepcopy(self.student_head)
        self.register_buffer("center", torch.zeros(1, 4096))
        # Every teacher parameter with its student's, as pretext's MomentumPairs; .to() keeps them.
        self.targets = list(self.teacher.parameters()) + list(self.teacher_head.parameters())
        self.online = list(self.student.parameters()) + list(self.student_head.parameters())
        for p in self.targets:
            p.requires_grad_(False)

    def forward(self, views):
        # One pass over both global crops each; pretext concatenates them for each network.
        student = self.student_head(self.student(torch.cat(views)))
        with torch.no_grad():
            teacher = self.teacher_head(self.teacher(torch.cat(views)))
        loss = dino_loss(student, teacher, self.center)
        with torch.no_grad():  # in the step, as pretext does: the loss used the old centre
            self.center.mul_(0.9).add_(teacher.mean(0, keepdim=True) * 0.1)
        return loss

    @torch.no_grad()
    def after_step(self, m=0.996):
        torch._foreach_mul_(self.targets, m)
        torch._foreach_add_(self.targets, self.online, alpha=1 - m)


def patchify(images, p):
    """[B, C, H, W] -> [B, patches, p*p*C], pixels (row, column, band) as the MAE reference."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


class Mae(nn.Module):
    """MaeOptions() on ViT-S/16 without class token: 75% of patches masked per image, a 2-block
    decoder 128 wide with 4 heads, per-patch normalised pixel targets."""

    def __init__(self, size, mask_ratio=0.75, width=128):
        super().__init__()
        self.vit = ViT(size, class_token=False)
        self.patches, self.ratio = (size // 16) ** 2, mask_ratio
        self.decoder_embed = nn.Linear(self.vit.dim, width)
        self.mask_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        # Fixed sine-cosine positions in pretext; their values do not change the work.
        self.register_buffer("decoder_pos_embed", torch.zeros(1, self.patches, width))
        self.decoder_blocks = nn.ModuleList(Block(width, 4, 4 * width) for _ in range(2))
        self.decoder_norm = nn.LayerNorm(width, eps=1e-6)
        self.decoder_pred = nn.Linear(width, 16 * 16 * 3)
        self.generator = torch.Generator().manual_seed(0)

    def random_masking(self, tokens):
        """methods/mae.cpp: noise sorted on the CPU (masks independent of the device), copied
        over pinned and non-blocking; the kept tokens, the 0/1 mask and the restoring order."""
        b, n, d = tokens.shape
        keep = max(1, math.floor(n * (1 - self.ratio) + 0.5))  # llround
        ids_shuffle = torch.rand(b, n, generator=self.generator).argsort(1)
        if tokens.is_cuda:
            ids_shuffle = ids_shuffle.pin_memory().to(tokens.device, non_blocking=True)
        ids_restore = ids_shuffle.argsort(1)
        visible = tokens.gather(1, ids_shuffle[:, :keep].unsqueeze(-1).expand(-1, -1, d))
        mask = torch.ones(b, n, dtype=tokens.dtype, device=tokens.device)
        mask[:, :keep] = 0
        return visible, mask.gather(1, ids_restore), ids_restore

    def forward(self, views):
        images = views[0].contiguous()  # pretext's step takes the channels-last view as NCHW
        b, tokens = images.shape[0], self.vit.patch_tokens(images)
        visible, mask, ids_restore = self.random_masking(tokens)
        x = self.vit.norm(self.vit.run_blocks(torch.cat([self.vit.prefix_tokens(b), visible], 1)))
        x = self.decoder_embed(x)
        x = torch.cat([x, self.mask_token.expand(b, self.patches - visible.shape[1], -1)], 1)
        x = x.gather(1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = x + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        prediction = self.decoder_pred(self.decoder_norm(x))
        target = patchify(images, 16)  # norm_pix_loss: each patch by its own mean and spread
        scale = (target.var(-1, keepdim=True) + 1e-6).sqrt()
        per_patch = (prediction - (target - target.mean(-1, keepdim=True)) / scale).pow(2).mean(-1)
        return (per_patch * mask).sum() / mask.sum().clamp_min(1)


def configure(precision, device):
    """TF32 only for tf32; cuDNN's autotuner on except for fp32. Returns the step's autocast."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.benchmark = precision != "fp32"
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


MODELS = {"simclr_resnet50": lambda size: SimClr(), "dino_vits16": Dino, "mae_vits16": Mae}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    for flag, default in [("--size", 224), ("--batch", 32), ("--steps", 10)]:
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--threads", type=int)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    autocast = configure(args.precision, device)
    torch.manual_seed(0)
    # Channels-last for every model, as pretext's trainer stores them (it matters for ResNet).
    method = MODELS[args.model](args.size).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad],
                                lr=0.05, momentum=0.9)
    views = [torch.rand(args.batch, 3, args.size, args.size, device=device)
             .contiguous(memory_format=torch.channels_last)
             for _ in range(1 if isinstance(method, Mae) else 2)]

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = method(views)
        loss.backward()
        optimizer.step()
        if isinstance(method, Dino):
            method.after_step()

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(3):
        step()
    synchronize = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize()
    seconds = time.perf_counter() - start
    print(f"images_per_s={args.batch * args.steps / seconds:.2f}")
    print(f"peak_mib={torch.cuda.max_memory_allocated(device) / 2**20 if cuda else 0.0:.1f}")


if __name__ == "__main__":
    main()
