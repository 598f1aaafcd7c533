"""Long 1-D convolutions computed with FFTs, with the semantics of `F.conv1d`.

The paper's second audio convolution has 40 x 40 filters of 4,000 taps over 48,000
samples: about 3e11 multiply-adds per 6 s utterance when run directly. The same
cross-correlation computed in the frequency domain costs O(n log n) per channel plus
one small channel-mixing matrix product per frequency, which is two orders of
magnitude cheaper at this width.

We use overlap-save: the padded signal is cut into overlapping blocks of `nfft`
samples (hop `nfft - K + 1`), each block is correlated with the filters by one
real FFT, and the valid part of each block is kept. Blocks of about twice the
filter width keep the FFT short (cheap to transform, small spectra of the filters)
while wasting at most half of each block. The backward pass reuses the same blocks
and spectra (a custom autograd function), which is both faster and lighter than
differentiating through `torch.fft`.

    >>> x, w = torch.randn(2, 3, 1000), torch.randn(4, 3, 101)
    >>> y = conv1d_fft(x, w, padding="same")
    >>> torch.allclose(y, F.conv1d(x, w, padding="same"), atol=1e-4)
    True
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

ConvImpl = Literal["auto", "direct", "fft"]
CONV_IMPLS: tuple[str, ...] = ("auto", "direct", "fft")

# `auto` uses the FFT once in_channels x width (the direct convolution's
# multiply-adds per output sample and channel) reaches this. Measured on CPU with
# bench/audio_conv.py (2 cores, forward, 48,000 samples, 40 output channels):
# 1 x 80 taps (the paper's first convolution) is 2x faster direct (5x forward +
# backward at batch 8), 1 x 400 is 3x faster by FFT, 40 x 32 already 2x, and the
# paper's second convolution (40 x 4,000) two orders of magnitude. No GPU was
# available to measure CUDA; cuDNN's direct kernels run much closer to peak than
# these FFTs, so the CUDA threshold is a conservative guess that still sends the
# paper's 40 x 4,000 to the FFT (re-measure with `bench/audio_conv.py --device cuda`).
AUTO_FFT_MIN_TAPS: dict[str, int] = {"cpu": 256, "cuda": 16384}


def conv1d_fft(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    padding: int | str | tuple[int, ...] = 0,
    nfft: int | None = None,
) -> Tensor:
    """`F.conv1d(x, weight, bias, padding=padding)` computed by overlap-save FFTs.

    Same semantics as `F.conv1d` with stride 1, dilation 1, groups 1:
    cross-correlation (no filter flip), zero padding, `padding` an int, a 1-tuple,
    "valid" or "same" ("same" with an even width pads one more sample on the right,
    as PyTorch does). Runs in float32 (float64 stays float64) with autocast off,
    since FFTs in reduced precision lose too many bits over thousands of taps; the
    result is float32 under autocast as well.

    x: (B, C_in, L); weight: (C_out, C_in, K); bias: (C_out,) or None.
    nfft: block length; default about twice the filter width (see `block_length`).
    """
    if x.dim() != 3 or weight.dim() != 3:
        raise ValueError(
            f"conv1d_fft expects x (B, C_in, L) and weight (C_out, C_in, K), "
            f"got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv1d_fft: x has {x.shape[1]} channels but weight expects {weight.shape[1]}"
        )
    width = weight.shape[-1]
    left, right = padding_amounts(padding, width)
    padded = x.shape[-1] + left + right
    if padded < width:
        raise ValueError(
            f"conv1d_fft: input of {x.shape[-1]} samples (padded {padded}) is shorter "
            f"than the filter ({width} taps)"
        )
    nfft = block_length(width, padded) if nfft is None else nfft
    if nfft < width:
        raise ValueError(f"conv1d_fft: nfft={nfft} must be at least the filter width {width}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    with torch.autocast(x.device.type, enabled=False):
        b = None if bias is None else bias.to(dtype)
        return _FFTConv1d.apply(x.to(dtype), weight.to(dtype), b, left, right, nfft)


def padding_amounts(padding: int | str | tuple[int, ...], width: int) -> tuple[int, int]:
    """(left, right) zero padding that `F.conv1d` applies for `padding`."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        # PyTorch puts the odd sample of an even width's padding on the right.
        total = width - 1
        return total // 2, total - total // 2
    if isinstance(padding, (tuple, list)) and len(padding) == 1:
        padding = padding[0]
    if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return padding, padding
    raise ValueError(
        f"Invalid padding {padding!r}. Only a non-negative int, 'valid' and 'same' are supported."
    )


def block_length(width: int, padded: int) -> int:
    """FFT block length for overlap-save: a fast size near 2 x width, at most one block."""
    whole = _fast_len(padded)  # one block covers the whole signal
    return min(whole, _fast_len(max(2 * width, 64)))


@functools.lru_cache(maxsize=None)
def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: FFT libraries are fastest on such lengths."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def choose_impl(impl: str, in_channels: int, width: int, device: torch.device) -> str:
    """Resolve `impl` ('auto', 'direct', 'fft') for in_channels x width taps on `device`."""
    if impl not in CONV_IMPLS:
        raise ValueError(
            f"Invalid audio convolution {impl!r}. Only {', '.join(CONV_IMPLS)} are supported."
        )
    if impl != "auto":
        return impl
    threshold = AUTO_FFT_MIN_TAPS.get(device.type, AUTO_FFT_MIN_TAPS["cpu"])
    return "fft" if in_channels * width >= threshold else "direct"


class AudioConv1d(nn.Conv1d):
    """`nn.Conv1d` (stride 1) that runs directly or by FFT, same parameters either way.

    Subclassing `nn.Conv1d` keeps its initialisation and parameter names, so a
    checkpoint does not depend on `impl`, and `direct` is exactly `nn.Conv1d`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int | str = "same",
        bias: bool = True,
        impl: ConvImpl = "auto",
    ):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        choose_impl(impl, in_channels, kernel_size, torch.device("cpu"))  # validate the name now
        self.impl = impl

    def forward(self, x: Tensor) -> Tensor:
        if choose_impl(self.impl, self.in_channels, self.kernel_size[0], x.device) == "fft":
            return conv1d_fft(x, self.weight, self.bias, self.padding)
        left, right = padding_amounts(self.padding, self.kernel_size[0])
        if left != right:
            # what F.conv1d does for "same" with an even width, minus its warning
            return F.conv1d(F.pad(x, (left, right)), self.weight, self.bias)
        return F.conv1d(x, self.weight, self.bias, padding=left)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, impl={self.impl}"


class _FFTConv1d(torch.autograd.Function):
    """Overlap-save cross-correlation with an explicit FFT backward.

    With hop = nfft - K + 1, output block j covers y[j*hop : (j+1)*hop] and needs the
    input block xp[j*hop : j*hop + nfft]; a circular correlation of length nfft
    reproduces the linear one there because (hop - 1) + (K - 1) < nfft. Per frequency
    f and block-batch index n = (b, j), the three products
        forward   Y[n, o]  = sum_c X[n, c] conj(W[o, c])
        grad x    GX[n, c] = sum_o GY[n, o] W[o, c]          (then overlap-add)
        grad w    GW[o, c] = sum_n conj(GY[n, o]) X[n, c]    (first K taps)
    are real batched matrix products on interleaved (re, im) spectra (complex bmm
    on CPU measured several times slower, and autograd through torch.fft spends
    most of its time copying and zero-filling). W enters
    as a real 2x2-block matrix (re, im per channel), which makes the forward and the
    input gradient one bmm each; the weight gradient takes all four re/im cross
    products in one bmm and combines them.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, left, right, nfft):
        B, C, L = x.shape
        O, _, K = weight.shape
        L_out = L + left + right - K + 1
        hop = nfft - K + 1
        nb = -(-L_out // hop)  # number of blocks
        total = (nb - 1) * hop + nfft  # >= L + left + right
        xp = F.pad(x, (left, total - L - left))  # (B, C, total)
        blocks = xp.unfold(-1, nfft, hop).transpose(1, 2)  # (B, nb, C, nfft), a view
        xs = _spectra(blocks, nfft)  # (F, B*nb, 2C)
        m = _block_matrix(weight, nfft)  # (F, 2C, 2O)
        y = _inverse(torch.bmm(xs, m), B, nfft)  # (B, nb, O, nfft)
        y = y[..., :hop].transpose(1, 2).reshape(B, O, nb * hop)[..., :L_out]  # (B, O, L_out)
        if bias is not None:
            y = y + bias[:, None]
        ctx.save_for_backward(xs, m)
        ctx.dims = (B, C, L, O, K, left, hop, nb, total, nfft)
        ctx.has_bias = bias is not None
        return y.contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        xs, m = ctx.saved_tensors
        B, C, L, O, K, left, hop, nb, total, nfft = ctx.dims
        grad_x = grad_w = grad_b = None
        # a backward run inside autocast must not drop the spectra to bf16/fp16
        with torch.autocast(gy.device.type, enabled=False):
            gy = gy.to(xs.dtype)
            gyb = F.pad(gy, (0, nb * hop - gy.shape[-1])).view(B, O, nb, hop)  # (B, O, nb, hop)
            gs = _spectra(gyb.transpose(1, 2), nfft)  # (F, B*nb, 2O)
            if ctx.needs_input_grad[0]:
                # the transposed block matrix is that of W without conjugate: the adjoint
                gxb = _inverse(torch.bmm(gs, m.transpose(1, 2)), B, nfft)  # (B, nb, C, nfft)
                # overlap-add the blocks back onto the padded signal
                gxp = F.fold(
                    gxb.permute(0, 2, 3, 1).reshape(B, C * nfft, nb),
                    output_size=(1, total),
                    kernel_size=(1, nfft),
                    stride=(1, hop),
                )  # (B, C, 1, total)
                grad_x = gxp[:, :, 0, left : left + L]  # (B, C, L)
            if ctx.needs_input_grad[1]:
                p = torch.bmm(gs.transpose(1, 2), xs)  # (F, 2O, 2C): all re/im cross sums
                p = p.view(-1, O, 2, C, 2)  # (F, O, re|im of GY, C, re|im of X)
                gw = torch.complex(
                    p[:, :, 0, :, 0] + p[:, :, 1, :, 1], p[:, :, 0, :, 1] - p[:, :, 1, :, 0]
                )  # (F, O, C) = sum_n conj(GY) X
                gw = gw.view(gw.shape[0], O * C).t().contiguous().view(O, C, -1)  # (O, C, F)
                grad_w = torch.fft.irfft(gw, n=nfft)[..., :K]  # (O, C, K)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_b = gy.sum((0, 2))  # (O,)
        return grad_x, grad_w, grad_b, None, None, None


def _spectra(blocks: Tensor, nfft: int) -> Tensor:
    """(B, nb, C, nfft) real blocks -> spectra as interleaved reals (F, B*nb, 2C).

    Frequency goes first so that each bin is one matrix of the batched product; the
    reordering is a plain 2-D transpose, which PyTorch copies in cache-sized tiles.
    """
    B, nb, C, _ = blocks.shape
    spec = torch.fft.rfft(blocks.contiguous(), n=nfft).view(B * nb * C, -1)  # (N*C, F)
    spec = spec.t().contiguous()  # (F, N*C) complex
    return torch.view_as_real(spec).view(spec.shape[0], B * nb, 2 * C)  # (F, N, 2C)


def _inverse(z: Tensor, B: int, nfft: int) -> Tensor:
    """Interleaved spectra (F, B*nb, 2C) -> inverse FFT blocks (B, nb, C, nfft)."""
    Fq, N, C2 = z.shape
    spec = torch.view_as_complex(z.view(Fq, N * C2 // 2, 2))  # (F, N*C)
    spec = spec.t().contiguous().view(B, N // B, C2 // 2, Fq)  # (B, nb, C, F)
    return torch.fft.irfft(spec, n=nfft)


def _block_matrix(weight: Tensor, nfft: int) -> Tensor:
    """Filters (O, C, K) -> real matrices (F, 2C, 2O) that multiply by conj(W).

    Row (c, s) and column (o, r), s and r = 0 for real and 1 for imaginary parts:
    (x_r + i x_i) * (w_r - i w_i) = (x_r w_r + x_i w_i) + i (x_i w_r - x_r w_i).
    """
    O, C, _ = weight.shape
    wf = torch.view_as_real(torch.fft.rfft(weight, n=nfft)).permute(2, 1, 0, 3)  # (F, C, O, 2)
    wr, wi = wf[..., 0], wf[..., 1]  # (F, C, O) views
    # filled in place: stacking would allocate several temporaries of this size
    m = weight.new_empty(wf.shape[0], C, 2, O, 2)  # (F, C, s, O, r)
    m[:, :, 0, :, 0] = wr
    m[:, :, 1, :, 0] = wi
    torch.neg(wi, out=m[:, :, 0, :, 1])
    m[:, :, 1, :, 1] = wr
    return m.view(wf.shape[0], 2 * C, 2 * O)


def macs_direct(batch: int, c_in: int, c_out: int, width: int, length_out: int) -> int:
    """Multiply-adds of the direct convolution (for benchmarks and `auto` reasoning)."""
    return batch * c_in * c_out * width * length_out


def macs_fft(batch: int, c_in: int, c_out: int, width: int, length_out: int) -> float:
    """Rough multiply-adds of overlap-save: transforms plus 4 real products per bin."""
    padded = length_out + width - 1
    nfft = block_length(width, padded)
    hop = nfft - width + 1
    nb = -(-length_out // hop)
    bins = nfft // 2 + 1
    transforms = batch * nb * (c_in + c_out) * 2.5 * nfft * math.log2(nfft)
    return transforms + 4 * batch * nb * bins * c_in * c_out
