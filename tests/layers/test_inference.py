"""Allocation-saving residual adds and activations: bit-identical results, never with autograd, hooks respected."""
import torch
from torch import nn

from vit_backbones.layers import Mlp, activate, residual_add


def test_residual_add_writes_into_the_branch_only_without_autograd():
    x, branch = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    expected = x + branch
    with torch.no_grad():
        out = residual_add(x, branch.clone())
    assert torch.equal(out, expected)
    kept = branch.clone()
    out = residual_add(x, branch)  # autograd on: a new tensor, the branch untouched
    assert torch.equal(out, expected) and torch.equal(branch, kept) and out.data_ptr() != branch.data_ptr()


def test_activate_in_place_matches_the_module():
    x = torch.randn(4, 33) * 3
    for act in (nn.GELU(), nn.GELU(approximate='tanh'), nn.ReLU(), nn.SiLU()):
        expected = act(x)
        with torch.no_grad():
            y = x.clone()
            out = activate(act, y)
        assert torch.equal(out, expected)
        if type(act) in (nn.GELU, nn.ReLU):
            assert out.data_ptr() == y.data_ptr()  # in place


def test_activate_calls_hooked_modules_and_keeps_autograd_inputs():
    act, seen = nn.GELU(), []
    handle = act.register_forward_hook(lambda module, args, out: seen.append(out))
    with torch.no_grad():
        activate(act, torch.randn(3))
    handle.remove()
    assert len(seen) == 1
    x = torch.randn(3, requires_grad=True)
    out = activate(act, x * 2)
    (grad,) = torch.autograd.grad(out.sum(), [x])  # the input the GELU backward needs was not overwritten
    x2 = x.detach().requires_grad_()
    (expected,) = torch.autograd.grad(nn.functional.gelu(x2 * 2).sum(), [x2])
    assert torch.equal(grad, expected)


def test_mlp_inference_equals_training_forward():
    torch.manual_seed(0)
    mlp = Mlp(8, 16).eval()
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        fast = mlp(x)
    assert torch.equal(fast, mlp(x))
