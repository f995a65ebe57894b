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


def test_channels_last_weights_changes_the_layout_not_the_values():
    from vit_backbones.layers import channels_last_weights
    torch.manual_seed(0)
    convs = [torch.nn.Conv2d(4, 6, 3), torch.nn.Conv2d(6, 2, 2)]
    before = [c.weight.detach().clone() for c in convs]
    channels_last_weights(iter(convs))  # any iterable, e.g. a generator over modules
    for conv, weight in zip(convs, before):
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
        torch.testing.assert_close(conv.weight, weight, rtol=0, atol=0)
        torch.nn.init.normal_(conv.weight)  # in-place initialisation keeps it
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        x = torch.randn(2, conv.in_channels, 7, 5).contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, conv.weight.contiguous(), conv.bias))
