"""The floor under an exact inverse-CDF sampler on this CPU: the dense passes alone, no picking.

  .venv/bin/python bench/sampling_floor.py

[32, 128256] float32 logits (normal x 6), a fresh copy per call made outside the clock; median us per row of 50
calls on 1 and 2 torch threads. bench/results/sampling.md cites these numbers.
"""
import time

import numpy as np
import torch

ROWS, VOCAB, BLOCK = 32, 128256, 128


def per_row_us(f, x: torch.Tensor, n: int = 50) -> float:
    times = []
    for _ in range(n):
        y = x.clone()
        t = time.perf_counter()
        f(y)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) / ROWS * 1e6


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(ROWS, VOCAB) * 6
    ones = np.ones(BLOCK, np.float32)
    cases = {
        "max": lambda y: y.amax(1),
        "divide (temperature)": lambda y: y.div_(0.8),
        "exp_ (torch)": lambda y: y.exp_(),
        "exp (numpy)": lambda y: np.exp(y.numpy(), out=y.numpy()),
        "softmax": lambda y: torch.softmax(y, 1, out=y),
        "block sums (torch sum)": lambda y: y.view(ROWS, -1, BLOCK).sum(2),
        "block sums (BLAS mat-vec)": lambda y: y.numpy().reshape(ROWS, -1, BLOCK) @ ones,
        "softmax + block sums": lambda y: torch.softmax(y, 1, out=y).view(ROWS, -1, BLOCK).sum(2),
        "logsumexp per block": lambda y: torch.logsumexp(y.view(ROWS, -1, BLOCK), 2),
    }
    print("| pass | 1 thread | 2 threads |\n|---|---|---|")
    for name, f in cases.items():
        row = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            row.append(f"{per_row_us(f, x):.0f}")
        print(f"| {name} | {' | '.join(row)} |")


if __name__ == "__main__":
    main()
