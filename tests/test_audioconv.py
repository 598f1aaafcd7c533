"""The FFT convolution computes what F.conv1d computes, forward and backward."""

import pytest
import torch
import torch.nn.functional as F

from avemotion.audioconv import AudioConv1d, choose_impl, conv1d_fft, padding_amounts


def _reference(x, w, b, padding):
    """F.conv1d in float64: the ground truth both implementations are held to."""
    xd, wd, bd = (t.detach().double().requires_grad_() for t in (x, w, b))
    y = F.conv1d(xd, wd, bd, padding=padding)
    return y, (xd, wd, bd)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("width", [1, 8, 9, 64, 101, 400])
@pytest.mark.parametrize("padding", ["same", "valid", 3])
def test_fft_matches_direct_forward_and_backward(width, padding):
    torch.manual_seed(width)
    x = torch.randn(2, 3, 1200, requires_grad=True)
    w = (torch.randn(5, 3, width) / width**0.5).requires_grad_()
    b = torch.randn(5, requires_grad=True)
    ref, leaves = _reference(x, w, b, padding)
    grad_out = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, leaves, grad_out)

    y = conv1d_fft(x, w, b, padding=padding)
    grads = torch.autograd.grad(y, (x, w, b), grad_out.float())

    assert y.shape == ref.shape and y.dtype == torch.float32
    # max abs difference below 1e-4 of the output's scale, forward and every gradient
    for got, want in zip((y, *grads), (ref, *ref_grads)):
        scale = want.abs().max().item()
        assert (got.double() - want).abs().max().item() < 1e-4 * scale


@pytest.mark.parametrize("nfft", [None, 130, 257, 1024])
def test_block_length_does_not_change_the_result(nfft):
    torch.manual_seed(0)
    x, w = torch.randn(1, 2, 700, dtype=torch.float64), torch.randn(3, 2, 128, dtype=torch.float64)
    want = F.conv1d(x, w, padding=5)
    assert torch.allclose(conv1d_fft(x, w, padding=5, nfft=nfft), want, atol=1e-10)


def test_long_filter_precision_in_float32():
    # closer to the paper's proportions: thousands of taps, tens of channels
    torch.manual_seed(0)
    x = torch.randn(1, 8, 8000)
    w = torch.randn(8, 8, 2000) / (8 * 2000) ** 0.5
    want = F.conv1d(x.double(), w.double(), padding="same")
    got = conv1d_fft(x, w, padding="same")
    assert (got.double() - want).abs().max() < 1e-4 * want.abs().max()


def test_same_padding_of_even_width_is_pytorchs():
    assert padding_amounts("same", 4000) == (1999, 2000)
    assert padding_amounts("same", 81) == (40, 40)
    assert padding_amounts("valid", 10) == (0, 0)
    assert padding_amounts((7,), 10) == (7, 7)
    with pytest.raises(ValueError, match="'valid' and 'same'"):
        padding_amounts("full", 10)


def test_module_gives_the_same_output_either_way():
    torch.manual_seed(0)
    conv = AudioConv1d(4, 6, 300, impl="direct")
    x = torch.randn(2, 4, 2000)
    direct = conv(x)
    conv.impl = "fft"
    fft = conv(x)
    assert (fft - direct).abs().max() < 1e-4 * direct.abs().max()


def test_auto_picks_fft_for_wide_filters_on_cpu():
    cpu = torch.device("cpu")
    assert choose_impl("auto", 40, 4000, cpu) == "fft"  # the paper's second convolution
    assert choose_impl("auto", 1, 80, cpu) == "direct"  # the paper's first
    assert choose_impl("direct", 40, 4000, cpu) == "direct"
    with pytest.raises(ValueError, match="auto, direct, fft"):
        choose_impl("winograd", 1, 80, cpu)
    with pytest.raises(ValueError, match="auto, direct, fft"):
        AudioConv1d(1, 1, 3, impl="winograd")


def test_fft_runs_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 800, requires_grad=True)
    w = torch.randn(4, 3, 300, requires_grad=True)
    want = conv1d_fft(x, w, padding="same")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = conv1d_fft(x.bfloat16(), w, padding="same")
        got.sum().backward()
    assert got.dtype == torch.float32
    # only the bf16 rounding of the input remains
    assert (got - want).abs().max() < 2e-2 * want.abs().max()
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()


def test_input_errors_are_clear():
    with pytest.raises(ValueError, match="channels"):
        conv1d_fft(torch.randn(1, 2, 100), torch.randn(3, 4, 5))
    with pytest.raises(ValueError, match="shorter than the filter"):
        conv1d_fft(torch.randn(1, 2, 10), torch.randn(3, 2, 50))
