"""Shuffle Transformer behaviour beyond the shared contract: the padded shuffle, stochastic depth, BatchNorms."""
import pytest
import torch

from vit_backbones.backbones import ShuffleTransformer
from vit_backbones.backbones.shuffle import ShuffleBlock
from vit_backbones.layers import DropPath, padded_key_mask, window_index

from .tiny_archs import TINY


def brute_force_window_attention(block: ShuffleBlock, x: torch.Tensor) -> torch.Tensor:
    """Attention of ``block`` on (B, H, W, C), one window and one query at a time, over the real keys only.

    The map is thought of as padded to whole windows; window (i, j) holds the tokens (i + a * nh, j + b * nw)
    when shuffled, (i * ws + a, j * ws + b) otherwise, with token index a * ws + b.
    """
    attn, ws = block.attn, block.window_size
    B, H, W, C = x.shape
    nh, nw = -(-H // ws), -(-W // ws)
    h, d = attn.num_heads, C // attn.num_heads
    table = attn.relative_position_bias_table
    out = torch.zeros_like(x)
    for i in range(nh):
        for j in range(nw):
            coords = [((a * nh + i, b * nw + j) if block.shuffle else (i * ws + a, j * ws + b), a * ws + b)
                      for a in range(ws) for b in range(ws)]
            real = [(r, c, t) for (r, c), t in coords if r < H and c < W]
            tokens = torch.stack([x[:, r, c] for r, c, _ in real], 1)  # (B, n, C)
            q, k, v = attn.qkv(tokens).reshape(B, len(real), 3, h, d).permute(2, 0, 3, 1, 4)
            bias = torch.stack([torch.stack([
                table[((tq // ws - tk // ws) + ws - 1) * (2 * ws - 1) + (tq % ws - tk % ws) + ws - 1]
                for _, _, tk in real]) for _, _, tq in real])  # (n, n, h)
            weights = (q @ k.transpose(-1, -2) * d ** -0.5 + bias.permute(2, 0, 1)).softmax(-1)
            y = attn.proj((weights @ v).transpose(1, 2).reshape(B, len(real), C))
            for n, (r, c, _) in enumerate(real):
                out[:, r, c] = y[:, n]
    return out


@pytest.mark.parametrize('shuffle', [False, True])
@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('size', [(8, 10), (9, 9), (2, 5)])
def test_padded_window_attention_is_exact_on_the_padded_map(shuffle, fused, size):
    torch.manual_seed(0)
    block = ShuffleBlock(8, 2, 3, shuffle, 2.0, True, 0.0, 0.0, 0.0, torch.nn.ReLU6, fused).eval()
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()
        x = torch.randn(2, *size, 8)
        mask = padded_key_mask(*size, 3, shuffle, x.device, x.dtype)
        index = window_index(*size, 3, 2, 2, shuffle=shuffle)
        torch.testing.assert_close(block.attn.forward_map(x, index, mask), brute_force_window_attention(block, x),
                                   rtol=1e-5, atol=1e-5)


def test_mask_is_zero_without_padding_and_hides_only_padded_keys():
    assert not padded_key_mask(14, 21, 7, True, torch.device('cpu'), torch.float32).any()
    mask = padded_key_mask(13, 20, 7, True, torch.device('cpu'), torch.float32)  # padded to 14 x 21
    assert mask.shape == (2 * 3, 1, 49)
    assert int(torch.isinf(mask).sum()) == 14 * 21 - 13 * 20  # each padded token is a key in exactly one window


def test_drop_path_is_one_rate_per_stage():
    model = ShuffleTransformer('tiny', drop_path_rate=0.3)
    rates = [[b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0.0 for b in s.blocks]
             for s in model.stages]
    assert rates == [[0.0] * 2, [pytest.approx(0.1)] * 2, [pytest.approx(0.2)] * 6, [pytest.approx(0.3)] * 2]


def test_blocks_alternate_regular_and_shuffled_windows():
    model = ShuffleTransformer('tiny')
    assert [b.shuffle for b in model.stages[2].blocks] == [False, True] * 3
    assert not any(b.shuffle for s in ShuffleTransformer('tiny', shuffle=False).stages for b in s.blocks)


@pytest.mark.parametrize('norm_eval', [True, False])
def test_norm_eval_keeps_the_batchnorm_statistics(norm_eval):
    torch.manual_seed(0)
    model = ShuffleTransformer(**TINY['ShuffleTransformer'][0], norm_eval=norm_eval).train()
    before = {k: v.clone() for k, v in model.state_dict().items() if 'running_' in k}
    model(torch.randn(2, 3, 64, 64))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) == norm_eval


def test_width_change_in_the_first_stage_merges_patches_as_the_official_model():
    arch = dict(embed_dim=16, depths=(2, 2), num_heads=(1, 2), dims=(32, 64))
    model = ShuffleTransformer(arch, window_size=3, out_indices=(0, 1))
    assert model.out_strides == (8, 16) and model.stages[0].downsample is not None
    assert [tuple(o.shape[-2:]) for o in model(torch.randn(1, 3, 64, 64))] == [(8, 8), (4, 4)]
