"""Checks pretext's exported encoders from Python (run by export_test.cpp; test helper only).

    export_check.py DIR

DIR/resnet18.pt must load into torchvision's resnet18 (fc removed) with strict key matching,
DIR/small.pt into a torchvision-layout ResNet with a 3x3 stem and widths 16-32-64-128, and
DIR/vit_mean.pt / DIR/vit_cls.pt into a ViT written here in timm's layout (timm itself is not in
Debian); all must reproduce the outputs pretext computed (DIR/*_io.pt). Then writes DIR/from_python.pt, a
torchvision resnet18 state dict saved the usual way (and DIR/from_gpu.pt, the same with its storages
tagged cuda:0), and DIR/from_python_io.pt for the reverse; and DIR/dinov2.pt, a ViT in DINOv2's
layout (patch 14, LayerScale, a mask token, positions for 56 pixels) with DIR/dinov2_io.pt, its
class-token features of 28-pixel images, positions resampled as DINOv2's interpolate_pos_encoding.
"""
import sys

import torch
import torch.nn as nn
import torchvision


def small_resnet18():
    """torchvision's ResNet-18 at a quarter width with a 3x3 stride-1 stem and no max-pool."""
    model = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2])
    widths = [16, 32, 64, 128]
    model.inplanes = 16
    model.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
    model.bn1 = nn.BatchNorm2d(16)
    model.maxpool = nn.Identity()
    model.layer1 = model._make_layer(torchvision.models.resnet.BasicBlock, widths[0], 2)
    model.layer2 = model._make_layer(torchvision.models.resnet.BasicBlock, widths[1], 2, stride=2)
    model.layer3 = model._make_layer(torchvision.models.resnet.BasicBlock, widths[2], 2, stride=2)
    model.layer4 = model._make_layer(torchvision.models.resnet.BasicBlock, widths[3], 2, stride=2)
    return model


class Block(nn.Module):
    """timm's pre-norm transformer block: names norm1, attn.qkv, attn.proj, norm2, mlp.fc1/fc2."""

    def __init__(self, dim, heads, hidden, layer_scale=False):
        super().__init__()
        self.heads = heads
        if layer_scale:  # DINOv2's LayerScale: ls1.gamma, ls2.gamma
            self.ls1 = nn.Module()
            self.ls1.gamma = nn.Parameter(torch.ones(dim))
            self.ls2 = nn.Module()
            self.ls2.gamma = nn.Parameter(torch.ones(dim))
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, hidden)
        self.mlp.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.attn.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attention = (q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(-1)
        scale = [self.ls1.gamma, self.ls2.gamma] if hasattr(self, "ls1") else [1, 1]
        x = x + scale[0] * self.attn.proj((attention @ v).transpose(1, 2).reshape(b, n, d))
        return x + scale[1] * self.mlp.fc2(nn.functional.gelu(self.mlp.fc1(self.norm2(x))))


class ViT(nn.Module):
    """timm's VisionTransformer(num_classes=0): global_pool "token" keeps norm and the class
    token, "avg" averages the patch tokens and uses fc_norm."""

    def __init__(self, size, patch, channels, dim, depth, heads, mlp_ratio, class_token):
        super().__init__()
        self.class_token = class_token
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(channels, dim, patch, patch)
        tokens = (size // patch) ** 2 + (1 if class_token else 0)
        if class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, int(dim * mlp_ratio)) for _ in range(depth))
        if class_token:
            self.norm = nn.LayerNorm(dim, eps=1e-6)
        else:
            self.fc_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        if self.class_token:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0] if self.class_token else self.fc_norm(x.mean(1))


class DinoV2ViT(nn.Module):
    """DINOv2's DinoVisionTransformer without registers: LayerScale blocks, a mask token, and
    position embeddings resampled to the input as its interpolate_pos_encoding (bicubic, scale
    (grid + 0.1) / M); features are x_norm_clstoken."""

    def __init__(self, size, patch, dim, depth, heads):
        super().__init__()
        self.patch = patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (size // patch) ** 2 + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, 4 * dim, layer_scale=True) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        grid = x.shape[-1] // self.patch
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        m, dim = int((self.pos_embed.shape[1] - 1) ** 0.5), x.shape[-1]
        scale = (grid + 0.1) / m
        patches = nn.functional.interpolate(
            self.pos_embed[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2), mode="bicubic",
            scale_factor=(scale, scale), antialias=False)
        assert patches.shape[-1] == grid
        x = x + torch.cat([self.pos_embed[:, :1], patches.permute(0, 2, 3, 1).reshape(1, -1, dim)], 1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


def check(folder, name, model):
    model.fc = nn.Identity()
    state = torch.load(f"{folder}/{name}.pt", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    io = torch.load(f"{folder}/{name}_io.pt", weights_only=True)
    with torch.no_grad():
        out = model(io["input"])
    error = (out - io["output"]).abs().max().item()
    print(f"{name}: {len(state)} tensors, max |difference| {error:.3g}")
    if error > 1e-4:
        sys.exit(f"{name}: outputs differ by {error}")


def main():
    folder = sys.argv[1]
    check(folder, "resnet18", torchvision.models.resnet18())
    check(folder, "small", small_resnet18())
    check(folder, "vit_mean", ViT(28, 4, 1, 128, 4, 4, 2, class_token=False))
    check(folder, "vit_cls", ViT(32, 8, 3, 64, 2, 4, 4, class_token=True))
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), f"{folder}/from_python.pt")
    # The same as a model that lived on a GPU saves it: every storage tagged "cuda:0" (what
    # torch.save records from storage.device; no GPU is needed to write the tag).
    location_tag = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    torch.save(model.state_dict(), f"{folder}/from_gpu.pt")
    torch.serialization.location_tag = location_tag
    model.fc = nn.Identity()
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.save({"input": x, "output": model(x)}, f"{folder}/from_python_io.pt")
    dinov2 = DinoV2ViT(56, 14, 32, 2, 4)
    with torch.no_grad():
        for p in dinov2.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    dinov2.eval()
    torch.save(dinov2.state_dict(), f"{folder}/dinov2.pt")
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.save({"input": x, "output": dinov2(x)}, f"{folder}/dinov2_io.pt")


if __name__ == "__main__":
    main()
