"""Fast 1-D strided and transposed convolutions for WaveGAN, as stride-1 convolutions.

XLA's CPU transposed convolution (an input-dilated convolution) wastes most of its work
on the inserted zeros, and the gradient of a strided convolution with respect to its
input is such a transposed convolution too. Both layers are rewritten here so that no
FLOP is spent on a structural zero (beyond padding kernels to a multiple of the stride):

* transposed convolution, stride s, kernel K ('SAME'): polyphase (sub-pixel) form. Output
  phase p of each input position is a stride-1 convolution with ceil(K/s) taps, so all s
  phases are one stride-1 convolution with s*Cout outputs, followed by a free reshape
  (NWC layout) that interleaves the phases.
* strided convolution, stride s, kernel K ('SAME'): space-to-depth. Folding s samples into
  channels turns it into a stride-1 convolution with ceil(K/s) taps and s*Cin inputs.

The generator's stride-1 convolutions go to XLA's CPU convolution (near matmul speed,
faster than an explicit im2col here); the critic's use im2col + one GEMM (``impl``),
because the gradient penalty differentiates them twice and XLA's convolution gradients
of gradients were up to 30x slower. All forms equal `lax.conv_transpose` /
`lax.conv_general_dilated` with 'SAME' padding (tests compare them).
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array

# Mixed precision: the dtype a layer computes in. Parameters stay float32 (what the optimiser
# updates); a layer casts its input and its parameters to the compute dtype (Flax's ``dtype``
# against ``param_dtype``).
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str):
    """The jnp dtype of a ``compute_dtype`` config value ('float32' or 'bfloat16')."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype={name!r}: expected one of {', '.join(COMPUTE_DTYPES)}")
    return COMPUTE_DTYPES[name]


def _same_transpose_pads(kernel: int, stride: int) -> tuple[int, int]:
    # The padding lax.conv_transpose uses for 'SAME' (its _conv_transpose_padding).
    pad_len = kernel + stride - 2
    pad_a = kernel - 1 if stride > kernel - 1 else -(-pad_len // 2)
    return pad_a, pad_len - pad_a


def _same_conv_pads(length: int, kernel: int, stride: int) -> tuple[int, int]:
    # 'SAME' padding of a strided convolution (TensorFlow's and lax's rule).
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


def _matmul_taps(x_BxLxC: Array, w_TxCxO: Array, lo: int, hi: int, precision=None) -> Array:
    """Stride-1 convolution y[l] = sum_t x[l + t - lo] @ w[t] as im2col + one matmul."""
    taps = w_TxCxO.shape[0]
    x = jnp.pad(x_BxLxC, ((0, 0), (lo, hi), (0, 0))) if lo or hi else x_BxLxC
    out = x.shape[1] - taps + 1
    cols = jnp.concatenate([x[:, t:t + out, :] for t in range(taps)], axis=-1) if taps > 1 else x
    b, length, k = cols.shape
    # A plain 2-D GEMM (batch and time merged) is what XLA CPU runs fastest.
    y = jnp.dot(cols.reshape(b * length, k), w_TxCxO.reshape(k, -1), precision=precision)
    return y.reshape(b, length, -1)


def _conv_taps(x_BxLxC: Array, w_TxCxO: Array, lo: int, hi: int | None = None, precision=None,
               impl: str = "conv") -> Array:
    """Stride-1 convolution y[l] = sum_t x[l + t - lo] @ w[t], padded by (lo, hi) (default: same length)."""
    taps = w_TxCxO.shape[0]
    hi = taps - 1 - lo if hi is None else hi
    if impl == "matmul":
        return _matmul_taps(x_BxLxC, w_TxCxO, lo, hi, precision)
    if impl != "conv":
        raise ValueError(f"impl={impl!r}: use 'conv' or 'matmul'")
    # XLA's stride-1 convolution on CPU runs near matmul speed (no dilation, no stride):
    # faster here than an explicit im2col matmul, whose patch matrix costs memory traffic.
    return lax.conv_general_dilated(x_BxLxC, w_TxCxO, (1,), [(lo, hi)],
                                    dimension_numbers=("NWC", "WIO", "NWC"), precision=precision)


def polyphase_kernel(w_KxIxO: Array, stride: int) -> tuple[Array, int]:
    """Rearranges a transposed-conv kernel into its stride-1 polyphase kernel [T, I, s*O] and left offset."""
    k = w_KxIxO.shape[0]
    pad_a, _ = _same_transpose_pads(k, stride)
    # Output o = s*m + p takes input m + q through tap k = s*q + pad_a - p.
    q_lo = min(-((pad_a - p) // stride) for p in range(stride))
    q_hi = max((k - 1 - pad_a + p) // stride for p in range(stride))
    taps = q_hi - q_lo + 1
    idx = np.zeros((taps, stride), np.int32)
    mask = np.zeros((taps, stride), np.float32)
    for t in range(taps):
        for p in range(stride):
            kk = stride * (t + q_lo) + pad_a - p
            if 0 <= kk < k:
                idx[t, p], mask[t, p] = kk, 1.0
    wp = w_KxIxO[idx] * jnp.asarray(mask, w_KxIxO.dtype)[:, :, None, None]  # [T, s, I, O]
    wp = jnp.transpose(wp, (0, 2, 1, 3)).reshape(taps, w_KxIxO.shape[1], stride * w_KxIxO.shape[2])
    return wp, -q_lo


def blocked_kernel(wp_TxIxO: Array, lo: int, block: int) -> tuple[Array, int, int]:
    """A stride-1 kernel over ``block`` positions folded into channels: [U, g*I, g*O], left/right pads."""
    taps, cin, cout = wp_TxIxO.shape
    g = block
    u_lo = -((g - 1 + lo) // g)
    u_hi = (taps - 1 + g - 1 - lo) // g
    n_u = u_hi - u_lo + 1
    idx = np.zeros((n_u, g, g), np.int32)
    mask = np.zeros((n_u, g, g), np.float32)
    for u in range(n_u):
        for r in range(g):          # input position within the block
            for j in range(g):      # output position within the block
                t = g * (u + u_lo) + r - j + lo
                if 0 <= t < taps:
                    idx[u, r, j], mask[u, r, j] = t, 1.0
    wb = wp_TxIxO[idx] * jnp.asarray(mask, wp_TxIxO.dtype)[..., None, None]  # [U, g(r), g(j), I, O]
    wb = jnp.transpose(wb, (0, 1, 3, 2, 4)).reshape(n_u, g * cin, g * cout)
    return wb, -u_lo, u_hi


def conv_transpose_1d(x_BxLxI: Array, w_KxIxO: Array, stride: int, precision=None, impl: str = "conv",
                      block: int = 1) -> Array:
    """'SAME' transposed convolution, equal to lax.conv_transpose(..., 'SAME') in NWC/WIO, output [B, s*L, O].

    ``block`` > 1 folds that many input positions into channels first: more FLOPs (zeros in
    the blocked kernel) but much wider matmuls, a win for the narrow last layers.
    """
    b, length, cin = x_BxLxI.shape
    out_ch = w_KxIxO.shape[2]
    wp, lo = polyphase_kernel(w_KxIxO, stride)
    if block > 1:
        if length % block:
            raise ValueError(f"block={block} must divide the input length {length}")
        wb, pad_lo, pad_hi = blocked_kernel(wp, lo, block)
        xb = x_BxLxI.reshape(b, length // block, block * cin)
        y = _conv_taps(xb, wb, pad_lo, pad_hi, precision=precision, impl=impl)
        return y.reshape(b, length * stride, out_ch)
    y = _conv_taps(x_BxLxI, wp, lo, precision=precision, impl=impl)  # [B, L, s*O], phase-major channels
    return y.reshape(b, length * stride, out_ch)


def conv_strided_1d(x_BxLxI: Array, w_KxIxO: Array, stride: int, precision=None, impl: str = "conv") -> Array:
    """'SAME' strided convolution, equal to lax.conv_general_dilated(..., (stride,), 'SAME') in NWC/WIO."""
    b, length, cin = x_BxLxI.shape
    k, _, cout = w_KxIxO.shape
    if stride == 1:
        lo, _ = _same_conv_pads(length, k, 1)
        return _conv_taps(x_BxLxI, w_KxIxO, lo, precision=precision, impl=impl)
    out = -(-length // stride)
    pad_a, _ = _same_conv_pads(length, k, stride)
    taps = -(-k // stride)
    # Space-to-depth: y[j] = sum_q sum_r w[s*q + r] x'[s*(j + q) + r] with x' = x padded by pad_a.
    need = (out + taps - 1) * stride
    x = jnp.pad(x_BxLxI, ((0, 0), (pad_a, need - length - pad_a), (0, 0)))
    x = x.reshape(b, out + taps - 1, stride * cin)
    w = jnp.pad(w_KxIxO, ((0, taps * stride - k), (0, 0), (0, 0))).reshape(taps, stride * cin, cout)
    return _conv_taps(x, w, 0, 0, precision=precision, impl=impl)


class ConvTranspose1D(nn.Module):
    """1-D 'SAME' transposed convolution (polyphase matmul form), kernel [K, Cin, Cout] + bias."""
    features: int
    kernel_size: int = 25
    stride: int = 4
    kernel_init: Callable = nn.initializers.glorot_uniform()
    bias_init: Callable = nn.initializers.zeros
    impl: str = "conv"
    block: int = 1
    dtype: Any = None        # compute dtype (None: the input's); parameters are float32

    @nn.compact
    def __call__(self, x_BxLxC: Array) -> Array:
        w = self.param("kernel", self.kernel_init, (self.kernel_size, x_BxLxC.shape[-1], self.features))
        b = self.param("bias", self.bias_init, (self.features,))
        x_BxLxC, w, b = _cast(self.dtype, x_BxLxC, w, b)
        return conv_transpose_1d(x_BxLxC, w, self.stride, impl=self.impl, block=self.block) + b


class ConvStrided1D(nn.Module):
    """1-D 'SAME' strided convolution (space-to-depth matmul form), kernel [K, Cin, Cout] + bias."""
    features: int
    kernel_size: int = 25
    stride: int = 4
    kernel_init: Callable = nn.initializers.glorot_uniform()
    bias_init: Callable = nn.initializers.zeros
    impl: str = "matmul"
    dtype: Any = None        # compute dtype (None: the input's); parameters are float32

    @nn.compact
    def __call__(self, x_BxLxC: Array) -> Array:
        w = self.param("kernel", self.kernel_init, (self.kernel_size, x_BxLxC.shape[-1], self.features))
        b = self.param("bias", self.bias_init, (self.features,))
        x_BxLxC, w, b = _cast(self.dtype, x_BxLxC, w, b)
        return conv_strided_1d(x_BxLxC, w, self.stride, impl=self.impl) + b


def _cast(dtype, *arrays):
    return arrays if dtype is None else tuple(a.astype(dtype) for a in arrays)


def reference_conv_transpose_1d(x_BxLxI: Array, w_KxIxO: Array, stride: int) -> Array:
    """XLA's own transposed convolution (the reference the fast form must equal)."""
    return lax.conv_transpose(x_BxLxI, w_KxIxO, (stride,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"),
                              precision=lax.Precision.HIGHEST)


def reference_conv_strided_1d(x_BxLxI: Array, w_KxIxO: Array, stride: int) -> Array:
    """XLA's own strided convolution (the reference the fast form must equal)."""
    return lax.conv_general_dilated(x_BxLxI, w_KxIxO, (stride,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"),
                                    precision=lax.Precision.HIGHEST)
