"""The obvious RNTK implementation, the baseline of ``make bench``.

One jitted ``lax.scan`` call per configuration (sigma_u, sigma_b, L, kind, pool,
direction), each on the full N x N matrix, with XLA's arccos and the diagonal read off
the matrix: the way the paper's scripts compute a grid.
"""

from __future__ import annotations

import itertools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


@partial(jax.jit, static_argnames=("layers", "kind", "pool"))
def naive_gram(x, sigma_w, sigma_u, sigma_b, *, layers: int, kind: str, pool: str):
    """x: (N, T) time series with m = 1. Returns the (N, N) kernel, sigma_v = 1."""
    n = x.shape[0]
    sw2, su2, sb2 = sigma_w**2, sigma_u**2, sigma_b**2
    zeros = jnp.zeros((n, n), x.dtype)

    def dual(cov):
        diag = jnp.sqrt(jnp.diag(cov))
        norm = diag[:, None] * diag[None, :]
        c = jnp.clip(cov / norm, -1.0, 1.0)
        theta = jnp.arccos(c)
        vphi = norm * (jnp.sin(theta) + (math.pi - theta) * c) / (2 * math.pi)
        dvphi = (math.pi - theta) / (2 * math.pi)
        return vphi, dvphi

    def step(carry, xt):
        vphis, dvphis, ps, total, _ = carry
        new_v, new_dv, new_p = [], [], []
        for layer in range(layers):
            below = su2 * jnp.outer(xt, xt) if layer == 0 else su2 * new_v[-1]
            cov = below + sw2 * vphis[layer] + sb2
            p = cov + sw2 * ps[layer] * dvphis[layer]
            if layer > 0:
                p = p + su2 * new_p[-1] * new_dv[-1]
            vphi, dvphi = dual(cov)
            new_v.append(vphi)
            new_dv.append(dvphi)
            new_p.append(p)
        out = new_v[-1] if kind == "ck" else new_v[-1] + new_p[-1] * new_dv[-1]
        return (new_v, new_dv, new_p, total + out, out), None

    init = ([zeros] * layers, [zeros] * layers, [zeros] * layers, zeros, zeros)
    (_, _, _, total, last), _ = jax.lax.scan(step, init, x.T)
    return total if pool == "avg" else last


def naive_grid(x: np.ndarray, sigma_w: float, sigma_u, sigma_b, layers: int) -> dict:
    """The paper's grid, one call per configuration. x: (N, T). Keys as ``gram_grid``'s."""
    out = {}
    for su, sb, depth, kind, pool, direction in itertools.product(
        sigma_u, sigma_b, range(1, layers + 1), ("ck", "ntk"), ("last", "avg"), ("fwd", "rev")
    ):
        data = x if direction == "fwd" else x[:, ::-1]
        kernel = naive_gram(
            jnp.asarray(data), sigma_w, su, sb, layers=depth, kind=kind, pool=pool
        )
        out[(kind, pool, depth, direction, su, sb)] = np.asarray(kernel)
    return out
