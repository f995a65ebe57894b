"""Window attention through gather indices against the tensor-level pad -> roll -> partition -> attend -> reverse."""
import itertools

import pytest
import torch

from vit_backbones.backbones.swin import SwinStage
from vit_backbones.layers import (
    LayoutCache,
    WindowAttention,
    cyclic_shift,
    pad_to_windows,
    shifted_window_mask,
    shuffle_partition,
    shuffle_reverse,
    window_grid,
    window_index,
    window_partition,
    window_reverse,
    window_slots,
)

CASES = [(H, W, ws, shift, shuffle)
         for H, W, ws, shift, shuffle in itertools.product((5, 7, 13, 14), (6, 20), (3, 7), ((0, 0), (1, 1), (0, 3)),
                                                           (False, True))
         if max(shift) < ws]


@pytest.mark.parametrize('H, W, ws, shift, shuffle', CASES)
def test_slots_follow_pad_roll_and_partition(H, W, ws, shift, shuffle):
    tokens = torch.arange(1, H * W + 1).view(1, H, W, 1)  # 0 marks padding
    grouped = (shuffle_partition if shuffle else window_partition)(cyclic_shift(pad_to_windows(tokens, ws), shift), ws)
    source, slot = window_slots(H, W, ws, shift, shuffle)
    assert torch.equal(source, torch.where(grouped.reshape(-1) == 0, H * W, grouped.reshape(-1) - 1))
    assert torch.equal(source[slot], torch.arange(H * W))  # every real token comes back from its own slot
    shift_t = (torch.tensor(shift[0]), torch.tensor(shift[1]))  # symbolic-style shifts give the same slots
    assert all(torch.equal(a, b) for a, b in zip(window_slots(H, W, ws, shift_t, shuffle), (source, slot)))


def reference_forward(attn: WindowAttention, x: torch.Tensor, shift, shuffle: bool, mask):
    """The tensor-level path: zero-pad the normed map, roll, group, attend on windows, ungroup, roll back, crop."""
    B, H, W, C = x.shape
    ws = attn.window_size
    group, ungroup = (shuffle_partition, shuffle_reverse) if shuffle else (window_partition, window_reverse)
    y = group(cyclic_shift(pad_to_windows(x, ws), shift), ws)  # (B, nW, N, C)
    y = ungroup(attn(y, mask), ws, window_grid(H, ws), window_grid(W, ws))  # (B, Hp, Wp, C)
    return cyclic_shift(y, shift, reverse=True)[:, :H, :W]


@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('grad', [False, True])
@pytest.mark.parametrize('H, W, shift, shuffle, qkv_bias', [
    (14, 14, (0, 0), False, True), (13, 20, (3, 3), False, True), (9, 16, (0, 3), False, False),
    (13, 20, (0, 0), True, False), (5, 6, (0, 0), False, True)])
def test_forward_map_equals_the_tensor_level_path(fused, grad, H, W, shift, shuffle, qkv_bias):
    torch.manual_seed(0)
    attn = WindowAttention(16, 2, 7, qkv_bias=qkv_bias, fused_attn=fused).eval()
    torch.nn.init.normal_(attn.relative_position_bias_table)
    x = torch.randn(2, H, W, 16, requires_grad=grad)
    hp, wp = window_grid(H, 7) * 7, window_grid(W, 7) * 7
    mask = shifted_window_mask(hp, wp, 7, shift, x.device, x.dtype) if any(shift) else None
    index = window_index(H, W, 7, 2, 2, shift, shuffle)
    with torch.set_grad_enabled(grad):
        out = attn.forward_map(x, index, mask)
        ref = reference_forward(attn, x, shift, shuffle, mask)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    if grad:  # the gathers' backward reaches every input token and the weights
        g_out = torch.autograd.grad(out.square().sum(), (x, attn.qkv.weight))
        g_ref = torch.autograd.grad(ref.square().sum(), (x, attn.qkv.weight))
        for a, b in zip(g_out, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_layout_cache_reuses_rebuilds_and_bounds_memory():
    built = []

    def build(n):
        built.append(n)
        return (torch.zeros(n),)

    cache = LayoutCache(max_elements=100)
    first = cache.get(('a', 10), lambda: build(10))
    assert cache.get(('a', 10), lambda: build(10)) is first and built == [10]
    cache.get(('a', 20), lambda: build(20))  # another size: rebuilt
    assert built == [10, 20]
    with torch.inference_mode():  # inference tensors are not handed to a later autograd forward
        cache.get(('a', 20), lambda: build(20))
    assert built == [10, 20, 20]
    cache.get(('big', 1000), lambda: build(1000))
    cache.get(('big', 1000), lambda: build(1000))  # over the bound: never kept
    assert built == [10, 20, 20, 1000, 1000]


def test_stage_layouts_survive_inference_then_training():
    stage = SwinStage(8, 8, 2, 2, 7, downsample=False, drop_path=[0.0, 0.0], norm_layer=torch.nn.LayerNorm)
    x = torch.randn(1, 9, 10, 8)
    with torch.inference_mode():
        expected = stage(x)
    out = stage(x.clone().requires_grad_())  # the cached indices of the inference call would fail in backward
    out.sum().backward()
    torch.testing.assert_close(out.detach(), expected)
