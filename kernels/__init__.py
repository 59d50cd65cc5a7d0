"""numba-compiled host kernels: the randomness tests."""
