"""A 7B-shaped model on the meta device in the window, as a person explores it: the tree
and the graph are there, every panel that would show values says a meta tensor has none,
and the pass buttons say why they cannot run."""

from test_graph_view import show_graph


def test_a_7b_shaped_model_shows_structure_and_says_it_has_no_values(qtbot, window):
    w = window("netexplorer.example_nets:llama_7b", select="layers.0.mlp.down_proj.weight")
    w.resize(1366, 768)
    w.show()
    qtbot.waitExposed(w)
    label = w.source_label.text()
    assert "6,738,415,616 parameters" in label and "meta device: structure only" in label
    heatmap = w.heatmap_panel
    assert "no values" in heatmap.title.text() and "meta" in heatmap.title.text()
    assert "4096 × 11008" in heatmap.title.text()
    assert "meta" in w.details.stats_note.text()
    controls = w.controls
    assert not controls.forward_button.isEnabled() and not controls.backward_button.isEnabled()
    assert "meta" in controls.status.text()
    panel = show_graph(qtbot, w)
    (fold,) = [i for i in panel.graph_scene.nodes.values() if i.is_fold]
    assert fold.lines[0] == "LlamaLayer ×32"
    assert panel.note.isHidden()  # it has data flow: the forward ran on the meta device
