"""Structure without memory: models built on the meta device (a factory with --meta, or one
that builds there itself, like the 7B-shaped example) give their tree, shapes, ties and
graph, and every place that would show values says that a meta tensor has none."""

import json
import subprocess
import sys

import pytest
import torch

from netexplorer.cli import main
from netexplorer.core.errors import PassError
from netexplorer.core.graph import FOLD, TIED_TENSOR, graph_for_tree
from netexplorer.core.sources import OpenOptions, open_source

LLAMA_7B = "netexplorer.example_nets:llama_7b"


def peak_rss_mb_of_building(spec: str) -> float:
    """The peak memory of a fresh interpreter that builds `spec`'s tree (this process's own
    peak holds whatever the tests before did). On Linux its VmHWM: `ru_maxrss` survives the
    exec, so a child forked from a test process that had mapped gigabytes of files reported
    their 11 GB."""
    script = f"""
import resource, sys
from netexplorer.core.sources import open_source
tree = open_source({spec!r})
if sys.platform.startswith("linux"):
    status = open("/proc/self/status").read()
    print(int(status.split("VmHWM:")[1].split()[0]))
else:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    kb = int(done.stdout.split()[-1])
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


@pytest.fixture(scope="module")
def llama():
    return open_source(LLAMA_7B)


def test_a_7b_shaped_model_has_its_tree_and_shapes_without_its_27_gb(llama):
    assert llama.total_parameters == 6_738_415_616
    assert len([p for p in llama.parameters if p.path.startswith("layers.")]) == 32 * 9
    down = llama.tensors["layers.31.mlp.down_proj.weight"]
    assert down.shape == (4096, 11008) and down.dtype == "float32"
    assert llama.tensors["lm_head.weight"].tie is None  # LLaMA's head is its own
    assert not down.handle.has_values and "meta" in down.handle.no_values_reason
    with pytest.raises(ValueError, match="no values"):
        down.handle.array()
    assert peak_rss_mb_of_building(LLAMA_7B) < 2000  # 27 GB of float32 never allocated


def test_its_graph_has_data_flow_and_folds_its_32_layers(llama):
    graph = graph_for_tree(llama)  # the batch its embedding takes, run on the meta device
    assert graph.has_data_flow
    assert graph.by_id["output"].shapes == [(2, 8, 32000)]
    (fold,) = graph.folds()
    assert fold.kind == FOLD and fold.type == "LlamaLayer" and len(fold.members) == 32
    view = graph.view(depth=2, fold=True)
    assert len(view.nodes) < 12  # input, embedding, the fold, norm, head, output


def test_ties_are_found_on_the_meta_device_by_identity():
    tree = open_source(
        "netexplorer.example_nets:TinyGPT", OpenOptions(meta=True)
    )  # the tiny GPT built on meta: tok_emb and head are one tensor
    (group,) = tree.tie_groups
    assert set(group.paths) == {"tok_emb.weight", "head.weight"}
    assert all(not t.handle.has_values for t in tree.tensors.values())
    graph = graph_for_tree(tree)
    assert graph.has_data_flow
    assert [link.kind for link in graph.tie_links] == [TIED_TENSOR]


def test_the_command_line_says_meta_tensors_have_no_values(capsys):
    assert main(["netexplorer.example_nets:tiny_gpt", "--meta", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metadata"]["meta"] is True
    for entry in out["parameters"]:
        assert entry["stats"] is None and "meta" in entry["no_values"]
    assert main(["--model", "netexplorer.example_nets:tiny_gpt", "--meta", "--summary"]) == 0
    assert "Total parameters: 7,232 (a tied tensor counted once)" in capsys.readouterr().out


def test_meta_needs_a_model_to_build(capsys):
    assert main(["example:tied", "--meta", "--summary"]) == 2
    assert "--meta needs a model to build" in capsys.readouterr().err


def test_no_passes_on_meta(llama):
    from netexplorer.core.passes import PassEngine

    with pytest.raises(PassError, match=r"meta device .* its factory builds it there"):
        PassEngine(llama).forward()
    assert torch.device("meta") == next(llama.module.parameters()).device
