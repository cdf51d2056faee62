// Compiles the precompiled header <torch/torch.h> once for every target.
