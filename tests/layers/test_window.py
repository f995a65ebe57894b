"""Window partitioning and shifted-window masks against the paper's slice-based definition."""
import pytest
import torch

from vit_backbones.layers import (
    PatchMerging,
    relative_position_index,
    resize_rel_pos_bias_table,
    shifted_window_mask,
    shuffle_partition,
    shuffle_reverse,
    window_partition,
    window_reverse,
)


def reference_mask(H, W, ws, shift):
    """The slice-based construction of the Swin paper's reference code, one region id per slice pair."""
    img = torch.zeros(H, W)
    cnt = 0
    h_slices = (slice(0, -ws), slice(-ws, -shift[0]), slice(-shift[0], None)) if shift[0] else (slice(None),)
    w_slices = (slice(0, -ws), slice(-ws, -shift[1]), slice(-shift[1], None)) if shift[1] else (slice(None),)
    for hs in h_slices:
        for wsl in w_slices:
            img[hs, wsl] = cnt
            cnt += 1
    win = window_partition(img[None, :, :, None], ws)[0, :, :, 0]
    diff = win[:, None, :] - win[:, :, None]
    return diff.ne(0).float() * -100.0


@pytest.mark.parametrize('H,W,shift', [(14, 14, (3, 3)), (21, 35, (3, 3)), (7, 28, (0, 3)), (56, 7, (3, 0))])
def test_mask_matches_reference(H, W, shift):
    mask = shifted_window_mask(H, W, 7, shift, torch.device('cpu'), torch.float32)
    torch.testing.assert_close(mask, reference_mask(H, W, 7, shift))


def test_partition_reverse_round_trip_and_order():
    x = torch.arange(2 * 14 * 21 * 3, dtype=torch.float32).reshape(2, 14, 21, 3)
    windows = window_partition(x, 7)
    assert windows.shape == (2, 6, 49, 3)
    torch.testing.assert_close(windows[0, 1].reshape(7, 7, 3), x[0, :7, 7:14])  # row-major windows
    torch.testing.assert_close(window_reverse(windows, 7, 2, 3), x)


def test_shuffle_partition_gathers_strided_tokens_and_reverses():
    x = torch.arange(2 * 14 * 21 * 3, dtype=torch.float32).reshape(2, 14, 21, 3)
    windows = shuffle_partition(x, 7)  # nh = 2, nw = 3 windows
    assert windows.shape == (2, 6, 49, 3)
    for i in range(2):
        for j in range(3):  # window (i, j): rows i, i + 2, ..., columns j, j + 3, ...
            torch.testing.assert_close(windows[1, i * 3 + j].reshape(7, 7, 3), x[1, i::2, j::3])
    torch.testing.assert_close(shuffle_reverse(windows, 7, 2, 3), x)


def test_relative_position_index_range_and_symmetry():
    index = relative_position_index(7)
    assert index.shape == (49, 49) and index.min() == 0 and index.max() == 13 * 13 - 1
    assert (index.diagonal() == 6 * 13 + 6).all()


def test_patch_merging_concatenation_order_and_padding():
    merge = PatchMerging(1, out_dim=4)
    merge.norm = torch.nn.Identity()
    torch.nn.init.eye_(merge.reduction.weight)
    x = torch.arange(9, dtype=torch.float32).reshape(1, 3, 3, 1)  # odd size -> padded to 4x4
    out = merge(x)
    assert out.shape == (1, 2, 2, 4)
    # offsets (row, col): (0,0), (1,0), (0,1), (1,1)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.0, 3.0, 1.0, 4.0]))
    torch.testing.assert_close(out[0, 1, 1], torch.tensor([8.0, 0.0, 0.0, 0.0]))


def test_rel_pos_table_resize():
    table = torch.randn(13 * 13, 3)
    assert resize_rel_pos_bias_table(table, 7) is table
    assert resize_rel_pos_bias_table(table, 12).shape == (23 * 23, 3)
    with pytest.raises(ValueError, match='square'):
        resize_rel_pos_bias_table(torch.randn(10, 3), 7)
