"""A mapped checkpoint tensor larger than the display: reduced by blocks to their signed
extreme (display.py's block reduction, rewritten for speed on such tensors; here with a
small display and small chunks so that every edge case is hit quickly)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from checkpoint_builders import write_safetensors

from netexplorer.core import display
from netexplorer.core.display import display_array
from netexplorer.core.sources import open_source


def block_extremes(matrix: np.ndarray, row_step: int, col_step: int) -> np.ndarray:
    """The reference: each block's value of largest magnitude (the max on a tie), NaN wins."""
    rows = range(0, matrix.shape[0], row_step)
    cols = range(0, matrix.shape[1], col_step)
    out = np.empty((len(rows), len(cols)))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            block = matrix[r : r + row_step, c : c + col_step].astype(np.float64)
            hi, lo = block.max(), block.min()
            out[i, j] = np.nan if np.isnan(block).any() else (hi if abs(hi) >= abs(lo) else lo)
    return out


@pytest.mark.parametrize(
    "tensor",
    [
        torch.randn(301, 110, generator=torch.Generator().manual_seed(0)),
        torch.randint(-128, 127, (210, 103), generator=torch.Generator().manual_seed(1)).to(
            torch.int8
        ),
        torch.rand(150, 250, generator=torch.Generator().manual_seed(2)) < 0.3,
    ],
    ids=["float32", "int8", "bool"],
)
def test_mapped_tensor_reduces_to_block_extremes(tmp_path, monkeypatch, tensor):
    if tensor.dtype == torch.float32:
        tensor[17, 5] = float("nan")
        tensor[299, 109] = 40.0
    path = write_safetensors(tmp_path / "big.safetensors", {"w": tensor})
    values = open_source(str(path)).tensors["w"].handle.array()
    monkeypatch.setattr(display, "REDUCE_CHUNK_BYTES", 512)  # many chunks, short last blocks
    shown = display_array(values, max_rows=40, max_cols=30)
    assert shown.reduced and shown.data.shape[0] <= 40 and shown.data.shape[1] <= 30
    expected = block_extremes(np.asarray(values), shown.row_step, shown.col_step)
    np.testing.assert_array_equal(shown.data, expected.astype(np.float32))
