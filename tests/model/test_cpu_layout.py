from __future__ import annotations

import pytest
import torch
from torch import nn

from osprey.config import get_preset
from osprey.model.cpu_layout import HEAD_BLOCK, use_column_major_linears, vocab_logits
from osprey.model.osprey import build_model


@pytest.mark.parametrize("rows", [1, 2, 8, 32, 33])
def test_blocked_head_equals_the_plain_head(rows: int) -> None:
    torch.manual_seed(0)
    head = nn.Linear(48, HEAD_BLOCK * 7, bias=False)
    hidden = torch.randn(rows, 1, 48)
    with torch.no_grad():
        torch.testing.assert_close(vocab_logits(head, hidden), head(hidden), atol=1e-5, rtol=1e-5)
        packed = torch.randn(1, rows, 48)  # one packed sequence of ``rows`` positions
        torch.testing.assert_close(vocab_logits(head, packed), head(packed), atol=1e-5, rtol=1e-5)


def test_blocked_head_is_not_used_when_it_cannot_apply() -> None:
    odd = nn.Linear(16, HEAD_BLOCK + 3, bias=False)  # the vocabulary does not split into blocks
    biased = nn.Linear(16, HEAD_BLOCK * 2)
    hidden = torch.randn(4, 16)
    with torch.no_grad():
        for head in (odd, biased):
            torch.testing.assert_close(vocab_logits(head, hidden), head(hidden))
    out = vocab_logits(biased, hidden)  # with gradients on: the plain call, so backward works
    out.sum().backward()
    assert biased.weight.grad is not None


def test_column_major_layout_keeps_values_and_logits() -> None:
    torch.manual_seed(0)
    model = build_model(get_preset("tiny")).eval()
    ids = torch.randint(0, 100, (3, 12))
    with torch.no_grad():
        before = model(ids).logits
        weights = {n: p.detach().clone() for n, p in model.language_model.named_parameters()}
        changed = use_column_major_linears(model.language_model)
        after = model(ids).logits
    assert changed == 7 * model.language_model.config.num_hidden_layers  # q, k, v, o, gate, up, down
    for name, param in model.language_model.named_parameters():
        assert torch.equal(param, weights[name]), name
        if "layers." in name and param.dim() == 2:
            assert param.t().is_contiguous(), name
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    assert use_column_major_linears(model.language_model) == 0  # idempotent
