"""Sampling on the device, for engines whose logits are torch tensors (the GPU path): the logits never leave the
device; only the token ids, and the logprobs a request asked for, come back.

runtime.llm.sampling.sample_rows dispatches torch tensors here. It keeps the CPU path's
Sampler objects (parameters, each choice's RNG stream, seen tokens) and its semantics: penalties then logit_bias
on the touched ids, one uniform draw per row from the sampler's RNG (sent to the device: rows x 8 bytes), inverse
CDF in id order at the row's temperature, the top_k best then the smallest top_p nucleus (best first, ties by id),
logprobs of the processed logits at temperature 1. Running sums are float64, as on the CPU path. On a GPU a full
sort of the rows that ask for top_p/top_k is cheap; rows without them never sort.
"""
from __future__ import annotations

import torch

from runtime.llm.sampler import Sampled, Sampler


def sample_rows(logits: torch.Tensor, samplers: list[Sampler]) -> list[Sampled]:
    """logits [rows, vocab] on any device, row i for samplers[i]; adjusted in place when already float32."""
    x = logits.float()
    adjust(x, samplers)
    tokens = torch.empty(len(samplers), dtype=torch.int64, device=x.device)
    greedy = [i for i, s in enumerate(samplers) if s.params.greedy]
    drawn = [i for i, s in enumerate(samplers) if not s.params.greedy]
    if greedy:
        tokens[greedy] = x[greedy].argmax(dim=1)
    if drawn:
        tokens[drawn] = draw_tokens(x[drawn], [samplers[i] for i in drawn])
    wanted = [i for i, s in enumerate(samplers) if s.params.logprobs]
    logprobs = token_logprobs(x[wanted], tokens[wanted], max(samplers[i].params.top_logprobs for i in wanted)) \
        if wanted else None
    host = tokens.tolist()  # the one device -> host copy every step needs
    for s, token in zip(samplers, host):
        s.observe(token)
    out = [Sampled(t) for t in host]
    for n, i in enumerate(wanted):
        lp, top_ids, top_lps = (part[n] for part in logprobs)
        k = samplers[i].params.top_logprobs
        out[i] = Sampled(host[i], lp, list(zip(top_ids[:k], top_lps[:k])) if k else None)
    return out


def adjust(x: torch.Tensor, samplers: list[Sampler]) -> None:
    """Penalties, then logit_bias, for every row at once through the touched (row, id) pairs only."""
    rows, ids, deltas, bias_rows, bias_ids, bias_values = [], [], [], [], [], []
    for r, s in enumerate(samplers):
        p = s.params
        for token, count in (s.seen or {}).items():
            rows.append(r)
            ids.append(token)
            deltas.append(count * p.frequency_penalty + p.presence_penalty)
        if s.bias_ids is not None:
            bias_rows += [r] * len(s.bias_ids)
            bias_ids += s.bias_ids.tolist()
            bias_values += s.bias_values.tolist()
    if rows:
        where = (torch.tensor(rows, device=x.device), torch.tensor(ids, device=x.device))
        x[where] = (x[where].double() - torch.tensor(deltas, dtype=torch.float64, device=x.device)).float()
    if bias_rows:
        where = (torch.tensor(bias_rows, device=x.device), torch.tensor(bias_ids, device=x.device))
        x[where] += torch.tensor(bias_values, dtype=torch.float32, device=x.device)


def draw_tokens(x: torch.Tensor, samplers: list[Sampler]) -> torch.Tensor:
    """x [rows, vocab] processed logits -> [rows] token ids, on the device."""
    device = x.device
    temperature = torch.tensor([s.params.temperature for s in samplers], dtype=torch.float32, device=device)
    w = torch.exp((x - x.max(dim=1, keepdim=True).values) / temperature[:, None])  # [rows, vocab], best 1
    r = torch.tensor([s.rng.random() for s in samplers], dtype=torch.float64, device=device)  # [rows]
    vocab = x.shape[1]
    top_k = [s.params.top_k if s.params.top_k < vocab else 0 for s in samplers]
    filtered = [i for i, s in enumerate(samplers) if s.params.top_p < 1.0 or top_k[i]]
    plain = [i for i in range(len(samplers)) if i not in set(filtered)]
    tokens = torch.empty(len(samplers), dtype=torch.int64, device=device)
    if plain:
        tokens[plain] = inverse_cdf(w[plain].double(), r[plain])
    if filtered:
        top_p = torch.tensor([samplers[i].params.top_p for i in filtered], dtype=torch.float64, device=device)
        k = torch.tensor([top_k[i] or vocab for i in filtered], device=device)
        tokens[filtered] = nucleus_draw(w[filtered], top_p, k, r[filtered])
    return tokens


def inverse_cdf(w: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """[rows, n] weights, [rows] uniforms -> [rows] the first index whose running sum exceeds r x total."""
    cdf = torch.cumsum(w, dim=1)  # [rows, n]
    u = (r * cdf[:, -1])[:, None]
    return torch.searchsorted(cdf, u, right=True)[:, 0].clamp(max=w.shape[1] - 1)


def nucleus_draw(w: torch.Tensor, top_p: torch.Tensor, k: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The k best ids, then the smallest best-first prefix holding top_p of their mass; a draw inside it."""
    vals, ids = torch.sort(w, dim=1, descending=True, stable=True)  # [rows, vocab], ties by id
    vals = vals.double() * (torch.arange(w.shape[1], device=w.device)[None, :] < k[:, None])  # beyond k: 0
    cdf = torch.cumsum(vals, dim=1)
    keep = torch.searchsorted(cdf, (top_p * cdf[:, -1])[:, None])[:, 0] + 1  # [rows] nucleus sizes
    keep = torch.minimum(keep, k)
    mass = cdf.gather(1, (keep - 1)[:, None])  # [rows, 1]
    pick = torch.searchsorted(cdf, r[:, None] * mass, right=True)[:, 0]
    pick = torch.minimum(pick, keep - 1)
    return ids.gather(1, pick[:, None])[:, 0]


def token_logprobs(x: torch.Tensor, tokens: torch.Tensor, k: int) -> tuple[list, list, list]:
    """Log-softmax of the processed logits: each row's token logprob and its k best (ids, logprobs), on the host."""
    lse = torch.logsumexp(x, dim=1, keepdim=True)  # [rows, 1]
    token_lp = (x.gather(1, tokens[:, None]) - lse)[:, 0]
    top_vals, top_ids = torch.topk(x, max(k, 1), dim=1)  # [rows, k], best first
    return token_lp.tolist(), top_ids.tolist(), (top_vals - lse).tolist()
