"""Random weights for the independent reference models of the parity tests."""
import torch
from torch import nn


def randomise(model: nn.Module, seed: int = 0, vector_std: float = 0.02) -> nn.Module:
    """Non-trivial weights, biases, tokens and BatchNorm statistics that keep activations of order one.

    Matrices and tokens get N(0, 0.02); 1-D parameters N(0, ``vector_std``) around 1 (weights) or 0 (biases);
    running means N(0, 0.1) and running variances U(1, 2). Returns the model in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim > 1:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
            else:
                offset = 1.0 if name.endswith('weight') else 0.0
                param.copy_(torch.randn(param.shape, generator=gen) * vector_std + offset)
        for name, buf in model.named_buffers():
            if name.endswith('running_mean'):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)
            elif name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 1.0)
    return model.eval()
