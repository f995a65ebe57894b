"""Helpers shared by the checkpoint converters: pure functions over ``dict[str, Tensor]``."""
import re
from typing import Any, NamedTuple, Sequence

from torch import Tensor


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the backbone it is loaded into."""


class Converted(NamedTuple):
    """A converted state dict, the layout it came from and the keys left out (key -> reason)."""

    state_dict: dict[str, Any]
    source: str
    dropped: dict[str, str]


WRAPPER_KEYS = ('state_dict', 'model', 'module', 'model_state')


def unwrap_state_dict(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Return the state dict inside a checkpoint (``state_dict``/``model`` wrappers, ``module.`` prefixes)."""
    for key in WRAPPER_KEYS:
        if isinstance(checkpoint.get(key), dict):
            return unwrap_state_dict(checkpoint[key])
    if checkpoint and all(k.startswith('module.') for k in checkpoint):
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return checkpoint


# Top-level modules of mmdet/mmseg/mmpretrain models that sit beside ``backbone.`` in a whole-model checkpoint
# (mmpretrain's ImageClassifier: ``head.``; its self-supervised algorithms: ``target_generator.``).
HEAD_PREFIXES = ('neck.', 'head.', 'decode_head.', 'auxiliary_head.', 'rpn_head.', 'roi_head.', 'bbox_head.',
                 'mask_head.', 'target_generator.', 'data_preprocessor.')


def backbone_state_dict(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The backbone's state dict inside any checkpoint: unwrapped, and ``backbone.*`` of a whole-model one."""
    state_dict = unwrap_state_dict(checkpoint)
    if any(k.startswith('backbone.') for k in state_dict) and \
            all(k.startswith('backbone.') for k in state_dict if not k.startswith(HEAD_PREFIXES)):
        return strip_prefix(state_dict, 'backbone.')  # a whole detector/segmentor/classifier checkpoint
    return state_dict


def strip_prefix(state_dict: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Keep the keys under ``prefix`` with the prefix removed; other keys are left out."""
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def rename_keys(state_dict: dict[str, Any], rules: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Apply regex rename ``rules`` (pattern, replacement string or function) to every key, in order."""
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def drop_keys(state_dict: dict[str, Any], rules: Sequence[tuple[str, str]],
              dropped: dict[str, str]) -> dict[str, Any]:
    """Remove keys matching any (pattern, reason) rule, recording each in ``dropped``."""
    out = {}
    for key, value in state_dict.items():
        reason = next((why for pattern, why in rules if re.search(pattern, key)), None)
        if reason is None:
            out[key] = value
        else:
            dropped[key] = reason
    return out


def adapt_input_conv(weight: Tensor, in_channels: int) -> Tensor:
    """Adapt a stem convolution (out, c, kh, kw) trained on ``c`` channels to ``in_channels`` input channels.

    One channel: the sum over the trained channels (a grey image as the same image in every channel). More
    channels: the trained channels repeated cyclically, scaled by ``c / in_channels`` so that an input whose channels
    all carry the same image gives the same response. The approach of timm's ``adapt_input_conv``.
    """
    c = weight.shape[1]
    if in_channels == c:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // c)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (c / in_channels)
