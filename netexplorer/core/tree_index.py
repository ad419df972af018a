"""The tree view's index of a ModuleTree: every node numbered in row order, the rows under
each module, and a lowercase search text, in a few flat arrays built once (off the GUI
thread for a large tree) so that nothing the view does later walks the tree.

Rows are the root module, then under each module its own tensors (state_dict order) and
then its child modules. Nodes are numbered in that order (depth first, preorder), which
makes every module's subtree the contiguous range of numbers `[n, end[n])`: whether a
module has a match below it is two binary searches, and the rows under every module are
slices of one array (`Rows`).

Filtering (`TreeFilter`) keeps the nodes whose path, kind (a tensor) or type (a module), or
access expression contains the text, and their ancestors, as the tree's filter always did.
The text is searched in every node's fields, kept in pieces of CHUNK records (`str.find`,
C speed, a piece at a time so that no single call holds the GIL for long); a longer text is
searched only among the matches of a shorter one it contains, and recent results are kept,
so typing narrows and deleting widens without a new scan. A text most records hold (a find
per match would be a Python loop of a million turns) is searched with numpy instead, and a
text that leaves the same matches as the one before it gives the same rows (the view then
stays as it is). The work is written as generators that yield progress between chunks (the UI's
TaskRunner cancels them there).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .tree import ModuleNode, ModuleTree, Node

FIELD_END = "\x00"  # between a node's fields in the search text
RECORD_END = "\x01"  # after each node's fields: a text never contains either
CHUNK = 20_000  # nodes per step between two yields (a few ms of work)
KEEP_RESULTS = 32  # recent filter results kept (deleting a character finds its result)
# A text most records contain is searched with numpy (tree_index._dense_matches): when
# narrowing among more matches than DENSE_WITHIN, or, in a scan, after a piece of the text
# (CHUNK records) where it was found DENSE_RUN times or more, DENSE_GAP characters apart or
# less on average
DENSE_WITHIN = 50_000
DENSE_RUN = 2_000
DENSE_GAP = 400
SAMPLE_BYTES = 1 << 16  # of a piece, counted to pick the needle's rarest byte

Progress = Generator[float, None, "TreeIndex"]


@dataclass(frozen=True)
class Rows:
    """What the tree view shows: for each shown module, its shown children in row order.

    `members` holds every shown node but the root, grouped by parent module (the groups
    in node order, and within a group in row order, which is node order); `parents` holds
    the parent of each member, so a module's rows are `members[lo:hi]` with `lo, hi` its
    bounds in `parents`. `matches` is None when nothing is filtered, else the nodes that
    match (sorted); the other shown nodes are their ancestors."""

    members: np.ndarray
    parents: np.ndarray
    matches: np.ndarray | None
    root_shown: bool
    numbers: np.ndarray  # every shown node, the root included, sorted
    widest: int  # the most rows under one module

    def count_within(self, lo: int, hi: int) -> int:
        """Shown nodes numbered in `[lo, hi)` (a subtree: `[n, end[n])`)."""
        return int(self.numbers.searchsorted(hi) - self.numbers.searchsorted(lo))

    def bounds(self, module: int) -> tuple[int, int]:
        """`lo, hi`: the rows under node `module` are `members[lo:hi]`."""
        lo = int(self.parents.searchsorted(module, "left"))
        hi = int(self.parents.searchsorted(module, "right"))
        return lo, hi

    @property
    def shown(self) -> int:
        """Shown nodes, the root included."""
        return len(self.members) + int(self.root_shown)

    @cached_property
    def expandable(self) -> np.ndarray:
        """The shown modules with shown rows under them, in node order (parents first)."""
        return self.parents[self._group_starts]

    @cached_property
    def _group_starts(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.parents, prepend=-1))

    @cached_property
    def _rows_before(self) -> np.ndarray:
        """For each of `expandable`, the rows under it and under those before it."""
        return np.cumsum(np.diff(self._group_starts, append=len(self.parents)))

    def expand_first(self, rows: int) -> int:
        """How many of `expandable` (in order) to expand for about `rows` rows under them."""
        if not len(self.parents):
            return 0
        return max(1, int(np.searchsorted(self._rows_before, rows, "right")))

    def is_match(self, number: int) -> bool:
        """Whether node `number` matches the filter (every node does when unfiltered)."""
        if self.matches is None:
            return True
        i = int(self.matches.searchsorted(number))
        return i < len(self.matches) and int(self.matches[i]) == number


class TreeIndex:
    """The nodes of a tree numbered in row order, with what the view needs to find rows.

    Built by `build_index` (a generator yielding progress) or `index_tree`."""

    def __init__(
        self,
        tree: ModuleTree,
        nodes: list[Node],
        parent: np.ndarray,
        end: np.ndarray,
        depth: np.ndarray,
        texts: list[str],
        starts: np.ndarray,
        ids: np.ndarray,
    ) -> None:
        self.tree = tree
        self.nodes = nodes  # node number -> node
        self.parent = parent  # node number -> its parent module's number (-1: the root)
        self.end = end  # node number -> the number after its subtree (n + 1 for a tensor)
        self.depth = depth  # node number -> depth (the root is 0)
        # every node's lowercase fields, FIELD_END/RECORD_END separated, in pieces of whole
        # records (CHUNK nodes each): one string of a million tensors' 100 MB was one copy
        # that held the GIL for 30 ms
        self.texts = texts
        self.text_starts = np.cumsum([0] + [len(t) for t in texts], dtype=np.int64)
        self.starts = starts  # node number -> where its record starts in the text (N + 1)
        self._id_order = np.argsort(ids)  # id(node) -> number by a binary search
        self._sorted_ids = ids[self._id_order]
        # the nodes with rows below them (modules with tensors or children), in order
        self.containers = np.flatnonzero(end - np.arange(len(nodes)) > 1)
        self.all_rows = _rows(self, np.arange(1, len(nodes)), None)
        self.width_sample = self.sample()  # made here, off the GUI thread

    def __len__(self) -> int:
        return len(self.nodes)

    def number(self, node: Node) -> int:
        """The node's number (ValueError for a node of another tree)."""
        key = id(node)
        i = int(self._sorted_ids.searchsorted(key))
        if i < len(self._sorted_ids) and int(self._sorted_ids[i]) == key:
            return int(self._id_order[i])
        raise ValueError(f"{node.path!r} is not a node of this tree")

    def number_of_path(self, path: str) -> int | None:
        """The number of the tensor or module at `path` (a tensor wins, as in
        ModuleTree.node), or None. A dictionary lookup and a binary search: no scan."""
        node = self.tree.tensors.get(path) or self.tree.modules.get(path)
        return None if node is None else self.number(node)

    def ancestors(self, number: int) -> list[int]:
        """The numbers of the modules above node `number`, the root first."""
        chain: list[int] = []
        parent = int(self.parent[number])
        while parent >= 0:
            chain.append(parent)
            parent = int(self.parent[parent])
        return chain[::-1]

    def record(self, number: int) -> str:
        """Node `number`'s searchable text (its lowercase fields)."""
        lo, hi = int(self.starts[number]), int(self.starts[number + 1]) - 1
        piece = int(self.text_starts.searchsorted(lo, "right")) - 1
        base = int(self.text_starts[piece])
        return self.texts[piece][lo - base : hi - base]

    def sample(self, count: int = 100) -> list[int]:
        """Nodes whose text stands for all of them when sizing columns: the first rows,
        rows spread evenly over the tree, and the deepest, longest-named ones."""
        n = len(self.nodes)
        first = np.arange(min(n, count))
        spread = np.linspace(0, n - 1, num=min(n, count), dtype=np.int64)
        lengths = np.diff(self.starts) + 2 * self.depth  # a record's length stands in
        top = min(n, count // 4)
        longest = np.argpartition(lengths, n - top)[n - top :] if top else first[:0]
        return sorted(set(np.concatenate([first, spread, longest]).tolist()))


def build_index(tree: ModuleTree) -> Progress:
    """Number the tree's nodes in row order and make its search text; yields the fraction
    done between chunks, returns the TreeIndex.

    Lists are turned into arrays a chunk at a time: one numpy call over a million Python
    objects holds the GIL for tens of ms, and the window waits for the GIL (a worker runs
    this)."""
    total = max(1, len(tree.modules) + len(tree.tensors))
    nodes: list[Node] = []
    columns = _Columns("parent", "depth", "length", "id", "closed", "end")
    parents, depths, lengths, closed, ends = (
        columns[k] for k in ("parent", "depth", "length", "closed", "end")
    )
    pieces: list[str] = []  # the text, joined a chunk at a time
    records: list[str] = []
    open_modules: list[tuple[int, int]] = []  # (number, depth) of modules not yet closed
    pending: list[tuple[ModuleNode, int, int]] = [(tree.root, -1, 0)]
    flushed = 0  # nodes whose columns are arrays already
    while pending:
        module, parent, depth = pending.pop()
        number = len(nodes)
        while open_modules and open_modules[-1][1] >= depth:
            closed.append(open_modules.pop()[0])
            ends.append(number)
        open_modules.append((number, depth))
        nodes.append(module)
        parents.append(parent)
        depths.append(depth)
        records.append(f"{module.path}\0{module.type_name}\0{module.access}".lower())
        tensors = module.tensors
        if tensors:
            nodes.extend(tensors)
            parents.extend([number] * len(tensors))
            depths.extend([depth + 1] * len(tensors))
            records.extend([f"{t.path}\0{t.kind}\0{t.access}".lower() for t in tensors])
        for child in reversed(module.children):
            pending.append((child, number, depth + 1))
        if len(records) >= CHUNK:
            lengths.extend(map(len, records))
            pieces.append(RECORD_END.join(records) + RECORD_END)  # each ends its records
            records = []
            columns["id"].extend(map(id, nodes[flushed:]))
            flushed = len(nodes)
            columns.flush()
            yield 0.9 * len(nodes) / total
    while open_modules:
        closed.append(open_modules.pop()[0])
        ends.append(len(nodes))
    lengths.extend(map(len, records))
    pieces.append(RECORD_END.join(records) + RECORD_END)
    columns["id"].extend(map(id, nodes[flushed:]))
    columns.flush()
    del records
    yield 0.92
    starts = np.zeros(len(nodes) + 1, dtype=np.int64)
    np.cumsum(columns.array("length") + 1, out=starts[1:])
    end = np.arange(1, len(nodes) + 1, dtype=np.int64)  # a tensor's subtree is itself
    end[columns.array("closed")] = columns.array("end")
    yield 0.95
    index = TreeIndex(
        tree,
        nodes,
        columns.array("parent"),
        end,
        columns.array("depth").astype(np.int32),
        pieces,
        starts,
        columns.array("id"),
    )
    yield 1.0
    return index


class _Columns:
    """Python lists of ints that become int64 arrays a chunk at a time."""

    def __init__(self, *names: str) -> None:
        self._lists: dict[str, list[int]] = {name: [] for name in names}
        self._arrays: dict[str, list[np.ndarray]] = {name: [] for name in names}

    def __getitem__(self, name: str) -> list[int]:
        return self._lists[name]

    def flush(self) -> None:
        for name, values in self._lists.items():
            if values:
                self._arrays[name].append(np.asarray(values, dtype=np.int64))
                values.clear()

    def array(self, name: str) -> np.ndarray:
        self.flush()
        parts = self._arrays[name]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def index_tree(tree: ModuleTree) -> TreeIndex:
    """`build_index` run to its end (small trees, tests)."""
    return run(build_index(tree))


def run(steps: Generator[float, None, object]):
    """The return value of a generator of progress, run to its end."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


# -- filtering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterResult:
    """The rows a filter text leaves (`rows.matches` are the matching nodes)."""

    text: str
    rows: Rows
    narrowed_from: str | None  # the shorter text whose matches were searched, if any

    @property
    def match_count(self) -> int:
        return len(self.rows.matches) if self.rows.matches is not None else self.rows.shown


class TreeFilter:
    """Filter results for one index, the recent ones kept (thread-safe: a superseded
    worker may still be finishing while the next one starts)."""

    def __init__(self, index: TreeIndex) -> None:
        self.index = index
        self._matches: OrderedDict[str, np.ndarray] = OrderedDict()
        self._last_rows: tuple[np.ndarray, Rows] | None = None  # the last rows made, and of
        self._lock = threading.Lock()  # which matches

    def result(self, text: str) -> Generator[float, None, FilterResult]:
        """The rows `text` leaves (lowercased and stripped here, as the box gives it);
        yields progress, returns a FilterResult."""
        text = text.strip().lower()
        if not text:
            return FilterResult("", self.index.all_rows, None)
        with self._lock:
            known = self._matches.get(text)
            if known is not None:
                self._matches.move_to_end(text)
            wider = self._narrowest_containing(text) if known is None else None
        if known is not None:
            matches, narrowed = known, None
        elif wider is not None:
            narrowed, within = wider
            matches = yield from find_matches(self.index, text, within)
        else:
            narrowed = None
            matches = yield from find_matches(self.index, text)
        with self._lock:
            self._matches[text] = matches
            self._matches.move_to_end(text)
            while len(self._matches) > KEEP_RESULTS:
                self._matches.popitem(last=False)
            last = self._last_rows
        if last is not None and last[0] is matches:  # typing on, every match still one
            rows = last[1]  # ("experts" in a million paths: 50 ms of arrays, and the
        else:  # view's reset, saved per keystroke)
            rows = _rows(self.index, _with_ancestors(self.index, matches), matches)
            with self._lock:
                self._last_rows = (matches, rows)
        return FilterResult(text, rows, narrowed)

    def result_now(self, text: str) -> FilterResult:
        """`result` run to its end on this thread (small trees)."""
        return run(self.result(text))

    def _narrowest_containing(self, text: str) -> tuple[str, np.ndarray] | None:
        """The kept result with the fewest matches whose text is inside `text`: every node
        matching `text` matches it too, so only its matches need searching (never slower
        than a scan: a scan pays the same per match, plus the whole text)."""
        best: tuple[str, np.ndarray] | None = None
        for known, matches in self._matches.items():
            if known in text and (best is None or len(matches) < len(best[1])):
                best = (known, matches)
        return best


def find_matches(
    index: TreeIndex, text: str, within: np.ndarray | None = None
) -> Generator[float, None, np.ndarray]:
    """The numbers (sorted) of the nodes whose record contains `text`, among `within` if
    given (sorted numbers) or all; yields progress between chunks."""
    if FIELD_END in text or RECORD_END in text or not text:
        return np.zeros(0, dtype=np.int64)
    texts, text_starts = index.texts, index.text_starts
    found: list[np.ndarray] = []  # arrays a chunk at a time (see build_index)
    if within is not None and len(within) > DENSE_WITHIN and text.isascii():
        # most of the tree to look through: a scan of every piece at numpy's speed, kept
        # to `within`, costs less than a find per record (1.25 million: 240 ms)
        every = yield from _dense_matches(index, text)
        if not len(every):
            return every
        at = every.searchsorted(within).clip(max=len(every) - 1)  # both sorted
        kept = every[at] == within
        return within if kept.all() else within[kept]  # the same: the same array
    if within is not None:
        for first in range(0, len(within), CHUNK):
            numbers = within[first : first + CHUNK]
            los = index.starts[numbers]
            pieces = (text_starts.searchsorted(los, "right") - 1).tolist()
            bases = text_starts[pieces].tolist()
            keep = [
                n
                for n, lo, hi, piece, base in zip(
                    numbers.tolist(),
                    los.tolist(),
                    index.starts[numbers + 1].tolist(),
                    pieces,
                    bases,
                    strict=True,
                )
                if texts[piece].find(text, lo - base, hi - base) >= 0
            ]
            found.append(np.asarray(keep, dtype=np.int64))
            yield first / max(1, len(within))
        if sum(map(len, found)) == len(within):
            return within  # every one: the same array (its rows are reused, TreeFilter)
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    total = max(1, int(text_starts[-1]))
    for number, (haystack, base) in enumerate(zip(texts, text_starts.tolist(), strict=False)):
        # records do not cross pieces: a match lies within one
        hits = np.fromiter(_finds(haystack, text), dtype=np.int64)
        found.append(hits + base)
        yield (base + len(haystack)) / total
        dense = len(hits) >= DENSE_RUN and len(hits) * DENSE_GAP > len(haystack)
        if dense and text.isascii() and number + 1 < len(texts):  # matches everywhere:
            rest = yield from _dense_matches(index, text, first_piece=number + 1)  # numpy
            found.append(index.starts[rest])  # as positions of matches: mapped back below
            break
    if not found:
        return np.zeros(0, dtype=np.int64)
    return index.starts.searchsorted(np.concatenate(found), "right") - 1


def _dense_matches(
    index: TreeIndex, text: str, first_piece: int = 0
) -> Generator[float, None, np.ndarray]:
    """The numbers (sorted) of the nodes whose record contains `text` (ASCII), in the pieces
    from `first_piece` on, found with numpy: the positions of the needle's rarest byte, then
    those where each other byte follows. For a text that most records contain: a find per
    match is a Python loop of a million turns. Pieces with other than ASCII (where bytes
    and characters differ) go the plain way."""
    needle = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    width = len(needle)
    found: list[np.ndarray] = []  # record numbers, a piece at a time
    texts, bases = index.texts, index.text_starts.tolist()
    for number in range(first_piece, len(texts)):
        piece, base = texts[number], bases[number]
        if not piece.isascii():
            at = np.asarray(list(_finds(piece, text)), dtype=np.int64)
        elif len(piece) >= width:
            haystack = np.frombuffer(piece.encode("ascii"), dtype=np.uint8)
            sample = np.bincount(haystack[:SAMPLE_BYTES], minlength=256)
            anchor = int(np.argmin(sample[needle]))  # the needle's rarest byte
            stop = len(haystack) - width + 1
            at = np.flatnonzero(haystack[anchor : anchor + stop] == needle[anchor])
            for k in range(width):
                if k != anchor and len(at):
                    at = at[haystack[at + k] == needle[k]]
        else:
            at = np.zeros(0, dtype=np.int64)
        # the records of this piece (records do not cross pieces), their starts and the end
        first = int(index.starts.searchsorted(base))
        last = int(index.starts.searchsorted(base + len(piece)))
        found.append(first + _holding(index.starts[first : last + 1] - base, at))
        yield (number + 1) / len(texts)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _holding(bounds: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """Which records (sorted, once each, numbered from 0) of those between `bounds` (their
    starts, then the end of the last) hold the sorted positions `hits`: each hit looked up
    among the bounds or, where hits outnumber the records (a letter found many times in
    each), each bound among the hits."""
    if len(hits) > len(bounds):
        first = hits.searchsorted(bounds)  # the first hit at or after each bound
        return np.flatnonzero(first[1:] > first[:-1])
    numbers = bounds.searchsorted(hits, "right") - 1
    if len(numbers):  # once each (a record may hold the text more than once)
        numbers = numbers[np.concatenate(([True], numbers[1:] != numbers[:-1]))]
    return numbers


def _finds(haystack: str, text: str) -> Generator[int, None, None]:
    """Where `text` first occurs in each record of `haystack` that holds it."""
    position, size, width = 0, len(haystack), len(text)
    while position < size:
        at = haystack.find(text, position)
        if at < 0:
            return
        yield at
        record_end = haystack.find(RECORD_END, at + width)
        position = size if record_end < 0 else record_end + 1


def _with_ancestors(index: TreeIndex, matches: np.ndarray) -> np.ndarray:
    """The matches and every module with a match in its subtree (sorted numbers)."""
    modules = index.containers
    below = matches.searchsorted(index.end[modules]) > matches.searchsorted(modules)
    # not np.union1d: numpy 2's unique holds the GIL for seconds on a million numbers
    shown = np.concatenate([matches, modules[below]])
    shown.sort()  # a quicksort, which lets go of the GIL
    return shown[np.concatenate([[True], shown[1:] != shown[:-1]])] if len(shown) else shown


def _rows(index: TreeIndex, shown: np.ndarray, matches: np.ndarray | None) -> Rows:
    """Rows of the shown node numbers (sorted): grouped by parent, in row order."""
    shown = np.asarray(shown, dtype=np.int64)
    root_shown = bool(len(shown)) and int(shown[0]) == 0
    members = shown[1:] if root_shown else shown
    parents = index.parent[members]
    # grouped by parent, in node order within a group: a quicksort of unique keys (a
    # stable sort of the parents holds the GIL)
    order = np.argsort(parents * len(index.nodes) + members)
    parents = parents[order]
    starts = np.flatnonzero(np.diff(parents, prepend=-2, append=-2))
    widest = int(np.diff(starts).max()) if len(starts) > 1 else 0
    rows = Rows(members[order], parents, matches, root_shown or matches is None, shown, widest)
    _ = rows.expandable, rows._rows_before  # made here, off the GUI thread (cached)
    return rows
