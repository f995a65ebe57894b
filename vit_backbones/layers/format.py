"""Layout helpers between channel-first maps and channel-last tokens."""
from torch import Tensor


def nhwc_to_nchw(x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, C, H, W), contiguous for the conv heads that follow."""
    return x.permute(0, 3, 1, 2).contiguous()  # (B, H, W, C) -> (B, C, H, W)


def nchw_to_nhwc(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H, W, C) as a view."""
    return x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
