"""The analysis figures: analytic checks of the statistics, exact token placement, the capture hook leaving outputs
unchanged, and every subcommand on a tiny model of every family writing a valid PNG and its JSON."""
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.backbones.tiny_archs import TINY, backbone_type
from vit_backbones.analysis import (
    MeanAttentionDistance,
    Placement,
    Rollout,
    attention_rollout,
    build_backbone,
    cosine_similarity_grid,
    filter_components,
    grid_centres,
    run_attention_distance,
    run_attention_maps,
    run_filters,
    run_pos_embed,
)
from vit_backbones.analysis.geometry import _windows
from vit_backbones.layers import Attention, capture_attention
from vit_backbones.registry import MODELS

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'analysis' / 'vit_figures.py'
CALIBRATION = 64  # a multiple of every tiny model's strides (4 ... 64), so the strides are exact


def global_placement(h: int, w: int, prefix: int = 0) -> Placement:
    xy = grid_centres(h, w).reshape(-1, 2)
    xy = torch.cat([torch.full((prefix, 2), float('nan'), dtype=xy.dtype), xy])[None]
    return Placement('global', (h, w), xy, xy, ~torch.isnan(xy).any(-1), num_prefix=prefix)


# ---- statistics ------------------------------------------------------------------------------------------
@pytest.mark.parametrize('k', [1, 2, 3])
def test_neighbour_attention_distance_is_k_patches(k):
    h = w = 6
    patch = 16
    P = 1  # a cls token: its row is not an image query, and attention to it is left out
    n = P + h * w
    attn = torch.zeros(2, 3, n, n)
    attn[:, :, 0, 0] = 1
    for i in range(h):
        for j in range(w):
            jj = j + k if j + k < w else j - k  # the neighbour k patches away in the same row
            attn[:, :, P + i * w + j, P + i * w + jj] = 1
    meter = MeanAttentionDistance()
    meter.add('layer', attn, global_placement(h, w, P), (patch, patch))
    (name, kind, dist), = meter.result()
    torch.testing.assert_close(dist, torch.full((3,), float(k * patch)))


def test_uniform_attention_distance_is_the_mean_pairwise_distance():
    n, patch = 5, 8
    cells = [(i, j) for i in range(n) for j in range(n)]
    expected = sum(math.hypot(a[0] - b[0], a[1] - b[1]) for a in cells for b in cells) / len(cells) ** 2 * patch
    attn = torch.full((1, 2, n * n, n * n), 1.0 / (n * n))
    meter = MeanAttentionDistance()
    meter.add('layer', attn, global_placement(n, n), (patch, patch))
    torch.testing.assert_close(meter.result()[0][2], torch.full((2,), expected))


def test_distance_renormalises_over_image_keys_and_ignores_padded_queries():
    # one 3x3 window over a 2x2 grid (padded at the bottom/right): half of each query's attention goes to a padded
    # key (2, 2) far away, which is not an image token; the other half to its in-image horizontal neighbour
    where = _windows((2, 2), 3)
    assert where.q_valid.sum() == 4 and where.q_xy.shape == (1, 9, 2)
    attn = torch.zeros(1, 1, 9, 9)
    for a in range(3):
        for b in range(3):
            attn[0, 0, a * 3 + b, 8] += 0.5
            attn[0, 0, a * 3 + b, a * 3 + (1 - b if b < 2 else 0)] += 0.5
    meter = MeanAttentionDistance()
    meter.add('w', attn, where, (4.0, 4.0))
    torch.testing.assert_close(meter.result()[0][2], torch.tensor([4.0]))


def test_rollout_of_identity_attention_is_identity():
    eye = torch.eye(7).expand(2, 3, 7, 7)
    torch.testing.assert_close(attention_rollout([eye, eye, eye]), torch.eye(7).expand(2, 7, 7))


def test_rollout_streams_the_product_of_the_mixed_layers():
    torch.manual_seed(0)
    maps = [torch.softmax(torch.randn(1, 2, 5, 5), -1) for _ in range(3)]
    mixed = [0.5 * m.double().mean(1) + 0.5 * torch.eye(5, dtype=torch.float64) for m in maps]
    expected = mixed[2] @ mixed[1] @ mixed[0]
    torch.testing.assert_close(attention_rollout(maps), expected.float())
    rollout = Rollout()
    rollout.add(maps[0])
    with pytest.raises(ValueError, match='changing size'):
        rollout.add(torch.softmax(torch.randn(1, 2, 4, 4), -1))


def test_pca_recovers_known_filter_components():
    torch.manual_seed(0)
    dim = 3 * 4 * 4
    basis, _ = torch.linalg.qr(torch.randn(dim, dim, dtype=torch.float64))
    comps = basis[:, :3].t()  # (3, D) orthonormal
    coeffs = torch.randn(500, 3, dtype=torch.float64) * torch.tensor([10.0, 5.0, 2.0], dtype=torch.float64)
    weight = coeffs @ comps + 0.01 * torch.randn(500, dim, dtype=torch.float64) + 3.0  # an offset PCA removes
    found, explained = filter_components(weight.reshape(500, 3, 4, 4).float(), num=3)
    assert found.shape == (3, 3, 4, 4)
    cosine = (found.double().flatten(1) @ comps.t()).abs()  # up to sign, component i is found at rank i
    torch.testing.assert_close(cosine.diagonal(), torch.ones(3, dtype=torch.float64), atol=1e-3, rtol=0)
    assert explained[0] > explained[1] > explained[2] and explained.sum() > 0.99


def sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos embedding: half the channels encode the row, half the column: (h, w, dim)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.double()[:, None] * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    return torch.cat([encode(ys.flatten()), encode(xs.flatten())], dim=1).reshape(h, w, dim)


def test_sincos_similarity_peaks_on_the_diagonal_and_decays_with_distance():
    h = w = 8
    sim = cosine_similarity_grid(sincos_2d(h, w, 128))
    assert sim.shape == (h, w, h, w)
    flat = sim.reshape(h * w, h * w)
    torch.testing.assert_close(flat.diagonal(), torch.ones(h * w))
    assert (flat.argmax(1) == torch.arange(h * w)).all()
    for i, j in [(0, 0), (3, 4), (7, 2)]:
        near = [sim[i, j, i, jj].item() for jj in range(w) if abs(jj - j) <= 4]
        by_offset = sorted(zip([abs(jj - j) for jj in range(w) if abs(jj - j) <= 4], near))
        means = [sum(v for d, v in by_offset if d == dd) / sum(1 for d, _ in by_offset if d == dd)
                 for dd in sorted({d for d, _ in by_offset})]
        assert all(a > b for a, b in zip(means, means[1:])), means  # falls off with the offset near the peak
        dist = torch.tensor([[math.hypot(ii - i, jj - j) for jj in range(w)] for ii in range(h)])
        assert sim[i, j][dist > 3].max() < sim[i, j][(dist > 0) & (dist <= 1)].min()  # far is less similar


# ---- placement -------------------------------------------------------------------------------------------
def naive_windows(H: int, W: int, ws: int, shift: tuple[int, int], shuffle: bool) -> torch.Tensor:
    """Token centres per window, by explicit loops: (nW, ws * ws, 2)."""
    Hp, Wp = -(-H // ws) * ws, -(-W // ws) * ws
    nh, nw = Hp // ws, Wp // ws
    out = []
    for wi in range(nh):
        for wj in range(nw):
            tokens = []
            for a in range(ws):
                for b in range(ws):
                    if shuffle:  # window (wi, wj) gathers rows wi + a * nh, columns wj + b * nw
                        r, c = wi + a * nh, wj + b * nw
                    else:  # torch.roll by -shift: position p holds token (p + shift) mod size
                        r, c = (wi * ws + a + shift[0]) % Hp, (wj * ws + b + shift[1]) % Wp
                    tokens.append((r + 0.5, c + 0.5))
            out.append(tokens)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize('H,W,shift,shuffle', [(14, 14, (0, 0), False), (9, 16, (3, 3), False),
                                               (16, 5, (3, 0), False), (14, 9, (0, 0), True)])
def test_window_placement_matches_explicit_loops(H, W, shift, shuffle):
    where = _windows((H, W), 7, shift, shuffle)
    torch.testing.assert_close(where.q_xy, naive_windows(H, W, 7, shift, shuffle))
    assert int(where.q_valid.sum()) == H * W  # every image token is a query exactly once


# ---- the capture hook -------------------------------------------------------------------------------------
def tiny(name: str) -> torch.nn.Module:
    kwargs = TINY[name][0]
    model = MODELS.build(dict(type=backbone_type(name), **kwargs))
    model.random_init()
    return model.eval()


@pytest.mark.parametrize('name', ['SwinTransformer', 'DeepViT', 'CaiT', 'PyramidVisionTransformerV2'])
@pytest.mark.parametrize('fused', [True, False])
def test_streaming_capture_leaves_outputs_unchanged(name, fused):
    torch.manual_seed(0)
    model = tiny(name)
    for m in model.modules():
        if isinstance(m, Attention):
            m.fused_attn = fused
    x = torch.randn(1, 3, 48, 40)
    seen = []
    with torch.no_grad():
        plain = model(x)
        with capture_attention(model, lambda n, m, a: seen.append((n, tuple(a.shape)))) as kept:
            captured = model(x)
        after = model(x)
    for a, b, c in zip(plain, captured, after):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
        torch.testing.assert_close(c, a, rtol=0, atol=0)
    assert seen and all(len(v) == 0 for v in kept.values())  # streamed, nothing kept
    assert {n for n, _ in seen} <= {n for n, m in model.named_modules() if isinstance(m, Attention)}


# ---- every subcommand on every family ---------------------------------------------------------------------
UNPLACED_OK = {'CeiT': 'lca'}  # CeiT's layer-wise class attention attends over per-layer cls tokens


def check_png(path) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == 'PNG' and min(image.size) > 50


@pytest.mark.parametrize('name', sorted(TINY))
def test_every_subcommand_on_every_family(name, tmp_path):
    torch.manual_seed(0)
    model = tiny(name)
    images = torch.randn(2, 3, 64, 64)
    picture = (torch.rand(64, 64, 3) * 255).to(torch.uint8).numpy()
    run_filters(model, str(tmp_path))
    run_pos_embed(model, str(tmp_path))
    dist = run_attention_distance(model, images, str(tmp_path), batch_size=2, progress=False,
                                  calibration_size=CALIBRATION)
    maps = run_attention_maps(model, images[:1], picture, str(tmp_path), calibration_size=CALIBRATION)
    for sub in ('filters', 'pos-embed', 'attention-distance', 'attention-maps'):
        check_png(tmp_path / f'{sub}.png')
        assert json.loads((tmp_path / f'{sub}.json').read_text())['model'] == backbone_type(name)
    attention = [n for n, m in model.named_modules() if isinstance(m, Attention)]
    placed = {layer['name'] for layer in dist['layers']}
    assert placed and all(n in attention for n in placed)
    assert all(UNPLACED_OK.get(name, '\0') in n for n in dist['unplaced']), dist['unplaced']
    for layer in dist['layers']:  # inside the image; 0 only where the grid is one token
        assert all(0 <= d <= 64 * math.sqrt(2) for d in layer['mean_distance']), layer
        assert layer['grid'] == [1, 1] or min(layer['mean_distance']) > 0, layer
    assert len(maps['query_maps']) == len(placed)
    for row in maps['query_maps']:
        total = sum(row['weights']) + row['other_weight']
        module = model.get_submodule(row['name'])
        if not (module.talking_heads or module.re_attention):  # head mixing after the softmax: not stochastic
            assert total == pytest.approx(1.0, abs=1e-4)


def test_rollout_only_for_global_attention_with_cls(tmp_path):
    picture = (torch.rand(64, 64, 3) * 255).to(torch.uint8).numpy()
    x = torch.randn(1, 3, 64, 64)
    vit = run_attention_maps(tiny('VisionTransformer'), x, picture, str(tmp_path), calibration_size=CALIBRATION)
    assert vit['rollout']['source'] == 'cls token' and vit['rollout']['layers'] == 4
    flow = torch.tensor(vit['rollout']['flow'])
    assert flow.shape == (4, 4) and (flow > 0).all()
    swin = run_attention_maps(tiny('SwinTransformer'), x, picture, str(tmp_path), calibration_size=CALIBRATION)
    assert swin['rollout'] is None and 'rollout_note' in swin


def test_vit_filters_are_pca_and_conv_stems_raw(tmp_path):
    vit = run_filters(tiny('VisionTransformer'), str(tmp_path))
    assert vit['mode'] == 'pca' and vit['count'] == 28 and vit['module'] == 'patch_embed.proj'
    shuffle = run_filters(tiny('ShuffleTransformer'), str(tmp_path))
    assert shuffle['mode'] == 'raw' and shuffle['count'] == 8  # the stem's first conv has token_dim = 8 filters


def test_pos_embed_kinds(tmp_path):
    vit = run_pos_embed(tiny('VisionTransformer'), str(tmp_path))
    assert vit['absolute']['grid'] == [4, 4] and 'relative' not in vit  # pretrain 64 / patch 16
    swin = run_pos_embed(tiny('SwinTransformer'), str(tmp_path))  # ape and window tables
    assert swin['absolute']['name'] == 'absolute_pos_embed'
    assert len(swin['relative']) == 8 and torch.tensor(swin['relative'][0]['bias']).shape == (1, 13, 13)
    cvt = run_pos_embed(tiny('CvT'), str(tmp_path))
    assert 'note' in cvt


def test_build_backbone_from_a_whole_model_checkpoint_and_the_cli(tmp_path):
    spec = importlib.util.spec_from_file_location('vit_figures_tool', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    main = tool.main
    arch = TINY['CvT'][0]['arch']
    source = tiny('CvT')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in source.state_dict().items()}}, tmp_path / 'seg.pth')
    (tmp_path / 'cfg.py').write_text(f"model = dict(type='EncoderDecoder', backbone=dict(type='vit_backbones.CvT', "
                                     f"arch={arch!r}))\n")
    model = build_backbone(str(tmp_path / 'cfg.py'), str(tmp_path / 'seg.pth'))
    for key, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    folder = tmp_path / 'images'
    folder.mkdir()
    for i in range(2):
        Image.fromarray((torch.rand(40, 50, 3) * 255).to(torch.uint8).numpy()).save(folder / f'{i}.png')
    out = tmp_path / 'out'
    assert main(['attention-distance', '--config', str(tmp_path / 'cfg.py'), '--checkpoint',
                 str(tmp_path / 'seg.pth'), '--images', str(folder), '--size', '64', '--out', str(out)]) == 0
    check_png(out / 'attention-distance.png')
    assert json.loads((out / 'attention-distance.json').read_text())['images'] == 2
    assert main(['filters', '--type', 'vit_backbones.Nope', '--out', str(out)]) == 2
