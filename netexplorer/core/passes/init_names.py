"""The initialisation schemes' names and menu labels, without torch: the window lists them in
its Edit menu before any model is live, and importing torch there would add a second and a
half to opening a checkpoint (edits.py holds what each scheme does)."""

from __future__ import annotations

# name -> what it does, in the notebook's words (the menu's text), in menu order
INIT_LABELS: dict[str, str] = {
    "normal": "normal(0, 0.01), biases zero (init_normal)",
    "zeros": "zeros",
    "constant": "constant (init_constant: 1), biases zero",
    "xavier_uniform": "xavier_uniform (init_xavier)",
    "chapter": "the chapter's my_init: uniform(-10, 10), zero where |w| < 5",
}
