"""Direct vs FFT for the paper's 4,000-tap audio convolution.

    python bench/audio_conv.py                  # CPU, a few minutes on 2 cores
    python bench/audio_conv.py --device cuda

Paper size: after the first convolution and max-pool a 6 s utterance is 48,000
samples at 8 kHz, 40 channels; the second convolution has 40 x 40 filters of 4,000
taps with "same" padding. The direct convolution is timed on a single utterance
(one run each for forward and forward+backward: ~3e11 multiply-adds, it is slow);
it is linear in the batch, so per-utterance times compare directly with the FFT's
at batch 8. The last line is `fft speedup: <N>x`, per-utterance forward+backward
time of direct divided by that of FFT.

A width sweep (forward, one utterance) shows where `audio_conv: auto` should switch.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from avemotion.audioconv import conv1d_fft, macs_direct

C, L, K = 40, 48_000, 4_000


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of `repeats` calls of fn (after one warm-up call when repeats > 1)."""
    if repeats > 1:
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def conv_fns(impl: str, batch: int, width: int, device: torch.device, c_in: int = C):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c_in, L, generator=g).to(device).requires_grad_()
    w = (torch.randn(C, c_in, width, generator=g) / (c_in * width) ** 0.5).to(device).requires_grad_()
    b = torch.zeros(C, device=device, requires_grad=True)
    conv = F.conv1d if impl == "direct" else conv1d_fft

    def forward():
        with torch.no_grad():
            return conv(x, w, b, padding="same")

    def forward_backward():
        y = conv(x, w, b, padding="same")
        y.backward(torch.ones_like(y))
        x.grad = w.grad = b.grad = None

    return forward, forward_backward, (x, w, b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8, help="FFT batch (direct runs one utterance)")
    ap.add_argument("--repeats", type=int, default=3, help="FFT timing repeats (median)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the width sweep")
    args = ap.parse_args()
    device = torch.device(args.device)
    # F.conv1d warns that "same" with an even width copies the input: expected here
    warnings.filterwarnings("ignore", message="Using padding='same'")
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"paper size: {C} -> {C} channels, {K} taps, {L} samples, padding same")
    print(f"direct: {macs_direct(1, C, C, K, L):.2e} multiply-adds per utterance (forward)")

    # agreement first: the speed of a wrong answer is not interesting
    _, _, (x, w, b) = conv_fns("fft", 1, K, device)
    with torch.no_grad():
        ref = F.conv1d(x, w, b, padding="same")
        err = (conv1d_fft(x, w, b, padding="same") - ref).abs().max().item()
    print(f"max |fft - direct| / max |direct| = {err / ref.abs().max().item():.1e}")

    rows = []
    fwd, fb, _ = conv_fns("direct", 1, K, device)
    direct_f = timed(fwd, device, 1)
    direct_fb = timed(fb, device, 1)
    rows.append(("direct", 1, direct_f, direct_fb))
    fwd, fb, _ = conv_fns("fft", args.batch, K, device)
    fft_f = timed(fwd, device, args.repeats)
    fft_fb = timed(fb, device, args.repeats)
    rows.append(("fft", args.batch, fft_f, fft_fb))
    fwd, fb, _ = conv_fns("fft", 1, K, device)
    rows.append(("fft", 1, timed(fwd, device, args.repeats), timed(fb, device, args.repeats)))

    print(f"\n{'impl':8} {'batch':>5} {'fwd s':>9} {'fwd+bwd s':>10} {'fwd/utt s':>10} {'fwd+bwd/utt s':>14}")
    for impl, batch, f, fbk in rows:
        print(f"{impl:8} {batch:5d} {f:9.3f} {fbk:10.3f} {f / batch:10.3f} {fbk / batch:14.3f}")
    print(f"batch {args.batch} by direct (extrapolated, linear in batch): "
          f"fwd {direct_f * args.batch:.1f} s, fwd+bwd {direct_fb * args.batch:.1f} s")

    if not args.no_sweep:
        print(f"\nsweep, forward, one utterance of {L} samples, {C} output channels "
              f"(where `auto` switches):")
        print(f"{'in ch':>5} {'width':>6} {'in x width':>10} {'direct s':>9} {'fft s':>9}")
        for c_in, width in ((1, 80), (1, 400), (40, 32), (40, 80), (40, 256), (40, 512)):
            d, _, _ = conv_fns("direct", 1, width, device, c_in)
            f, _, _ = conv_fns("fft", 1, width, device, c_in)
            print(f"{c_in:5d} {width:6d} {c_in * width:10d} {timed(d, device, 3):9.3f} {timed(f, device, 3):9.3f}")

    print(f"\nfft forward speedup: {direct_f / (fft_f / args.batch):.0f}x per utterance")
    print(f"fft speedup: {direct_fb / (fft_fb / args.batch):.0f}x")


if __name__ == "__main__":
    main()
