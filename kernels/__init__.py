"""numba-compiled host kernels: the randomness tests (Wald–Wolfowitz runs, Cox–Stuart trend) and, in
kernels.stft_mel, the CPU mel spectrogram that maskgan_jax.features calls."""
from kernels.cox_stuart import (CoxStuartResult, cox_stuart, cox_stuart_batch,
                                cox_stuart_stream)
from kernels.runs import (WaldWolfowitzResult, wald_wolfowitz, wald_wolfowitz_batch,
                          wald_wolfowitz_stream)
from kernels.score import score_clips

__all__ = [
    "CoxStuartResult", "WaldWolfowitzResult", "cox_stuart", "cox_stuart_batch",
    "cox_stuart_stream", "score_clips", "wald_wolfowitz", "wald_wolfowitz_batch",
    "wald_wolfowitz_stream",
]
