"""Checks pretext's exported encoders from Python (run by export_test.cpp; test helper only).

    export_check.py DIR

DIR/resnet18.pt must load into torchvision's resnet18 (fc removed) with strict key matching,
and DIR/small.pt into a torchvision-layout ResNet with a 3x3 stem and widths 16-32-64-128; both
must reproduce the outputs pretext computed (DIR/*_io.pt). Then writes DIR/from_python.pt, a
torchvision resnet18 state dict saved the usual way, and DIR/from_python_io.pt for the reverse.
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


def check(folder, name, model):
    model.fc = nn.Identity()
    state = torch.load(f"{folder}/{name}.pt")
    model.load_state_dict(state, strict=True)
    model.eval()
    io = torch.load(f"{folder}/{name}_io.pt")
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
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), f"{folder}/from_python.pt")
    model.fc = nn.Identity()
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.save({"input": x, "output": model(x)}, f"{folder}/from_python_io.pt")


if __name__ == "__main__":
    main()
