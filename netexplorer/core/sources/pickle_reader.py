"""The restricted unpickler every torch file and pickle is read with, before anything else
sees it.

It is Python's pure-Python unpickler (its memo is a dict: a pickle cannot make it allocate by
naming a huge memo index), so it knows every opcode of protocols 0 to 5, with these changes:
- a global resolves only to a stand-in the caller allows (netexplorer's own, which build
  nothing but plain data); any other global becomes an `Opaque` placeholder that records its
  name, and calling one (REDUCE, NEWOBJ, INST, OBJ) gives another placeholder: nothing from
  the file is ever called, imported or looked up (EXT codes are mapped to names through
  copyreg's table, never through its cache of objects);
- the pickle is read to its end even after a global it cannot build, so a refusal names
  every global the file would call (`NotPlain.needs`), and the limits below are checked on
  the whole file before torch or anyone else unpickles it;
- tuples nested deeper than MAX_TUPLE_NESTING are refused when built (hashing one as a dict
  key or set element recurses in C and kills the process: a million levels fit in 1 MB);
- a size a pickle asks for instead of carrying data (`bytearray(N)`, `torch.FloatTensor(N)`,
  a BYTEARRAY8 longer than the file) is refused past MAX_CLAIMED_BYTES;
- BUILD sets attributes only on an OrderedDict (a state dict's `_metadata`), and never one
  that would hide a method of the dict (`items`, `keys`);
- more than MAX_TENSORS tensors are refused while they are read.
Every failure is one of three exceptions: NotPlain (the file needs torch's own loader, or
trust), Refused (a limit; the message says which and why) or Damaged (not a valid pickle).
"""

from __future__ import annotations

import _compat_pickle
import collections
import copyreg
import io
import math
import mmap
import pickle
import re
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar

from ..errors import SourceError
from ..limits import GET_IT_AGAIN, MAX_CLAIMED_BYTES, MAX_TENSORS, MAX_TUPLE_NESTING, size_text
from .pickle_scan import Proof, scan

TOO_MANY_TENSORS = (
    "it holds more than {:,} tensors, the most netexplorer opens (each is a tree node, a "
    "line and statistics); open a smaller part of it"
)


class NotPlain(Exception):
    """The file needs more than netexplorer's own reader builds: `needs` names the globals
    it would call ("torch._utils._rebuild_qtensor", "posix.system"), `reasons` the rest.
    `written_by_torch` is False for a plain pickle (`pickle.dump`), which torch.load cannot
    read whatever it holds."""

    def __init__(self, *reasons: str, needs: Iterable[str] = ()) -> None:
        self.reasons = tuple(reasons)
        self.needs = tuple(dict.fromkeys(needs))
        self.written_by_torch = True
        parts = [*(f"needs {name}" for name in self.needs), *self.reasons]
        super().__init__("; ".join(parts) or "needs torch's own loader")


class Refused(Exception):
    """The file breaks a limit (it is crafted, or damaged beyond reading): the message says
    which limit and why, in words for the user."""


class Damaged(Refused):
    """The bytes are not a valid pickle: the message says where."""


@dataclass(frozen=True, slots=True)
class Opaque:
    """A global outside the stand-ins, or the result of calling one: only its name. A
    pickle may go on to fill it (a defaultdict is made, then its items set): what it is
    given is dropped, so reading continues to the end and names every global."""

    name: str

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEM(S)
        pass

    def append(self, item: Any) -> None:  # APPEND(S)
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:  # ADDITEMS
        pass


# Globals that allocate the size they are given (torch's weights-only loader allows them)
_ALLOCATORS = re.compile(
    r"^(builtins\.bytearray|torch\.storage\.(Untyped|Typed)Storage"
    r"|torch\.(cuda\.|sparse\.)?\w*(Tensor|Storage))$"
)
_ITEMSIZES = {"Double": 8, "Long": 8, "ComplexFloat": 8, "ComplexDouble": 16, "Float": 4}
_ITEMSIZES.update({"Int": 4, "Half": 2, "BFloat16": 2, "Short": 2, "Char": 1, "Byte": 1})
_ITEMSIZES.update({"Bool": 1, "Untyped": 1})
_MESSAGES = (  # pickle's own words -> what happened, for a message
    (("truncated", "exhausted", "EOF"), "it ends in the middle of its pickle"),
    (("invalid load key",), "a byte that is no pickle instruction"),
)


class RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Unpickles with stand-ins only, reading to the end (see the module docstring).

    `stand_ins` maps (module, name) to the objects a global becomes; `callables` are those
    of them REDUCE may call; `tensor_makers` those that count as a tensor each;
    `persistent_load` resolves a persistent id (a storage) or raises NotPlain."""

    dispatch: ClassVar[dict[int, Callable[..., Any]]] = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(
        self,
        file: BinaryIO,
        *,
        stand_ins: Mapping[tuple[str, str], Any],
        callables: Iterable[Any] = (),
        tensor_makers: Iterable[Any] = (),
        persistent_load: Callable[[Any], Any] | None = None,
        file_size: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(file, encoding="utf-8")  # as torch.load reads Python 2 strings
        self._progress = progress  # called with the count of tensors, every REPORT_EVERY
        self._file = file
        self._stand_ins = stand_ins
        self._callables = {id(c): c for c in callables}
        self._tensor_makers = {id(c) for c in tensor_makers}
        self._resolve = persistent_load
        self._file_size = file_size
        self.needs: dict[str, None] = {}  # globals outside the stand-ins, in order met
        self.reasons: dict[str, None] = {}  # other reasons the file needs torch
        self.tensors = 0
        self.claimed = 0  # bytes asked for by size
        # id -> (depth, tuple): the tuple is kept alive so its id is never reused
        self._depths: dict[int, tuple[int, tuple]] = {}

    # -- the outcome ------------------------------------------------------------------------

    def load_all(self) -> Any:
        """The object, or NotPlain naming everything the file needs; Refused or Damaged."""
        try:
            obj = self.load()
        except (NotPlain, Refused, SourceError):  # SourceError: the user cancelled
            raise
        except RecursionError:
            raise Refused(f"its pickle nests objects too deeply to read; {GET_IT_AGAIN}") from None
        except MemoryError:
            raise Refused("its pickle needs more memory than there is") from None
        except Exception as exc:  # pickle.UnpicklingError, EOFError, IndexError, KeyError, ...
            raise Damaged(self._damage(exc)) from None
        if self.needs or self.reasons:
            raise NotPlain(*self.reasons, needs=self.needs)
        return obj

    def _damage(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__} {exc}"
        what = next((m for words, m in _MESSAGES if any(w in text for w in words)), None)
        try:
            where = f"at byte {self._file.tell():,}"
        except (OSError, ValueError):
            where = ""
        return f"its pickle is damaged {where} ({what or 'an instruction without its values'})"

    def _note(self, error: NotPlain) -> Opaque:
        self.needs.update(dict.fromkeys(error.needs))
        self.reasons.update(dict.fromkeys(error.reasons))
        return Opaque(error.reasons[0] if error.reasons else "an object torch builds")

    # -- globals and persistent ids ---------------------------------------------------------

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:  # Python 2 names, as pickle maps them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        found = self._stand_ins.get((module, name))
        if found is not None:
            return found
        full = f"{module}.{name}"
        if len(full) > 200:
            full = full[:197] + "..."
        self.needs[full] = None
        return Opaque(full)

    def persistent_load(self, pid: Any) -> Any:
        if self._resolve is None:
            raise Damaged("its pickle refers to data stored elsewhere, and this file has none")
        try:
            return self._resolve(pid)
        except NotPlain as error:
            return self._note(error)

    def get_extension(self, code: int) -> None:
        key = copyreg._inverted_registry.get(code)  # names only; the object cache is skipped
        if key is None:
            raise Damaged(f"its pickle uses extension code {code}, which is not registered")
        self.append(self.find_class(*key))

    # -- calls ------------------------------------------------------------------------------

    def _call(self, func: Any, args: Any) -> Any:
        if not isinstance(args, tuple):
            raise Damaged("its pickle calls a function without a tuple of arguments")
        if isinstance(func, Opaque):
            self._claim(func.name, args)
            return Opaque(f"{func.name}(...)")
        if id(func) not in self._callables:
            raise Damaged(f"its pickle calls something that is not a function ({type(func)})")
        if id(func) in self._tensor_makers:
            self.tensors += 1
            if self.tensors > MAX_TENSORS:
                raise Refused(TOO_MANY_TENSORS.format(MAX_TENSORS))
            if self._progress is not None and self.tensors % REPORT_EVERY == 0:
                self._progress(self.tensors)
        try:
            return func(*args)
        except NotPlain as error:
            return self._note(error)

    def _claim(self, name: str, args: tuple) -> None:
        """Refuse a call that would allocate more than MAX_CLAIMED_BYTES by size alone."""
        if not _ALLOCATORS.match(name):
            return
        sizes = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        if not sizes or not all(type(n) is int for n in sizes):
            return  # data, not sizes
        kind = name.rsplit(".", 1)[1].removesuffix("Tensor").removesuffix("Storage")
        itemsize = 1 if name == "builtins.bytearray" else _ITEMSIZES.get(kind, 8)
        self.claimed += math.prod(abs(n) for n in sizes) * itemsize
        if self.claimed > MAX_CLAIMED_BYTES:
            raise Refused(
                f"its pickle calls {name} to allocate {size_text(self.claimed)} it does not "
                f"hold (from a file of {size_text(self._file_size)}; netexplorer allows "
                f"{size_text(MAX_CLAIMED_BYTES)} asked for by size); {GET_IT_AGAIN}"
            )

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._construct(cls, args))

    def load_newobj_ex(self) -> None:
        self.stack.pop()  # keyword arguments
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._construct(cls, args))

    def load_obj(self) -> None:
        args = self.pop_mark()
        if not args:
            raise Damaged("its pickle makes an object of no class")
        cls = args.pop(0)
        self.append(self._construct(cls, tuple(args)))

    def load_inst(self) -> None:
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        cls = self.find_class(module, name)
        args = tuple(self.pop_mark())  # before self.append is looked up: it changes stacks
        self.append(self._construct(cls, args))

    def _construct(self, cls: Any, args: Any) -> Opaque:
        """NEWOBJ, OBJ and INST make objects of a class: never done here."""
        if isinstance(cls, Opaque):
            self._claim(cls.name, args if isinstance(args, tuple) else ())
            return Opaque(f"{cls.name}(...)")
        return self._note(NotPlain(f"an object made by a class ({type(cls).__name__})"))

    # -- state ------------------------------------------------------------------------------

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, Opaque):
            return  # torch decides, if the file goes to it
        if type(target) is not collections.OrderedDict or not isinstance(state, dict):
            self.stack[-1] = self._note(
                NotPlain(f"BUILD of something other than an OrderedDict ({type(target).__name__})")
            )
            return
        for key in state:
            if type(key) is not str:
                raise Damaged("its pickle sets an attribute whose name is not a string")
            if key.startswith("__") or hasattr(collections.OrderedDict, key):
                raise Refused(
                    f"its pickle sets the attribute {key[:40]!r} of a dict, which would hide "
                    f"the dict's own; {GET_IT_AGAIN}"
                )
        target.__dict__.update(state)

    # -- tuples: their nesting depth --------------------------------------------------------

    def _tuple(self, items: Iterable[Any]) -> tuple:
        t = tuple(items)
        inner = 0  # the deepest tuple inside (a plain loop: this runs for every tuple)
        for x in t:
            if type(x) is tuple:  # a list or dict stops hashing; a frozenset uses cached hashes
                known = self._depths.get(id(x))
                depth = 1 if known is None else known[0]  # depth-1 tuples are not recorded
                if depth > inner:
                    inner = depth
        if inner:
            if inner + 1 > MAX_TUPLE_NESTING:
                raise Refused(
                    f"its pickle nests tuples more than {MAX_TUPLE_NESTING:,} deep (hashing such a "
                    f"tuple would crash Python); {GET_IT_AGAIN}"
                )
            self._depths[id(t)] = (inner + 1, t)
        return t

    def load_tuple(self) -> None:
        items = self.pop_mark()  # before self.append is looked up: it changes stacks
        self.append(self._tuple(items))

    def load_tuple1(self) -> None:
        self.stack[-1] = self._tuple(self.stack[-1:])

    def load_tuple2(self) -> None:
        self.stack[-2:] = [self._tuple(self.stack[-2:])]

    def load_tuple3(self) -> None:
        self.stack[-3:] = [self._tuple(self.stack[-3:])]

    # -- data a pickle sizes itself ---------------------------------------------------------

    def load_bytearray8(self) -> None:
        (length,) = struct.unpack("<Q", self.read(8))
        if length > self._file_size:
            raise Damaged(f"its pickle holds a bytearray of {length:,} bytes, longer than the file")
        self.append(bytearray(self.read(length)))

    for _opcode, _method in (
        (pickle.REDUCE, load_reduce),
        (pickle.NEWOBJ, load_newobj),
        (pickle.NEWOBJ_EX, load_newobj_ex),
        (pickle.OBJ, load_obj),
        (pickle.INST, load_inst),
        (pickle.BUILD, load_build),
        (pickle.TUPLE, load_tuple),
        (pickle.TUPLE1, load_tuple1),
        (pickle.TUPLE2, load_tuple2),
        (pickle.TUPLE3, load_tuple3),
        (pickle.BYTEARRAY8, load_bytearray8),
    ):
        dispatch[_opcode[0]] = _method
    del _opcode, _method


def load_restricted(data: bytes | mmap.mmap | BinaryIO, **options: Any) -> Any:
    """Unpickle `data` (bytes, or a read-only mmap or file positioned at a pickle) with
    netexplorer's stand-ins (options as RestrictedUnpickler's; see its `load_all` for what
    it raises). A pickle the pre-scan proves (pickle_scan.py) is built by Python's C
    unpickler under hooks that keep every other guarantee (`_load_proven`); any other, or
    one the C unpickler stops on, by the RestrictedUnpickler: the outcome is the same."""
    if isinstance(data, (bytes, bytearray)):
        options.setdefault("file_size", len(data))
    if isinstance(data, (bytes, bytearray, mmap.mmap)):
        start = data.tell() if isinstance(data, mmap.mmap) else 0
        proof = scan(data, start)
        if proof is not None:
            try:
                obj = _load_proven(data, start, proof, **options)
            except _Unproven:
                pass
            else:
                if isinstance(data, mmap.mmap):
                    data.seek(proof.end)
                return obj
    file = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    return RestrictedUnpickler(file, **options).load_all()


class _Unproven(Exception):
    """The C unpickler met what the scan left to the hooks and a hook did not accept it
    (a global outside the stand-ins, a storage torch must build, a stand-in refusing its
    arguments): the RestrictedUnpickler reads the pickle instead and says what it needs."""


REPORT_EVERY = 10_000  # tensors between two progress reports


def _load_proven(
    data: bytes | bytearray | mmap.mmap,
    start: int,
    proof: Proof,
    *,
    stand_ins: Mapping[tuple[str, str], Any],
    callables: Iterable[Any] = (),
    tensor_makers: Iterable[Any] = (),
    persistent_load: Callable[[Any], Any] | None = None,
    file_size: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """Build a proven pickle with the C unpickler. Its globals resolve to stand-ins only;
    those it may call are wrapped (fresh functions, which count tensors and register the
    OrderedDicts they make); persistent ids are resolved by `persistent_load` once they are
    known to hold no tuple (a storage reference the scan did not see whole is checked here,
    before anything can hash it). Afterwards the attributes BUILD set on OrderedDicts are
    checked as the RestrictedUnpickler checks them, and the result must hold no wrapper (a
    stand-in kept as a value, which the RestrictedUnpickler keeps as itself). Raises
    _Unproven for the RestrictedUnpickler to read it, or Refused for MAX_TENSORS."""
    makers = {id(f) for f in tensor_makers}
    calls = {id(f) for f in callables}
    made: list[collections.OrderedDict] = []  # OrderedDicts made, when BUILD can set state
    tensors = [0]

    def refuse_tensors() -> None:
        if any(od.__dict__ for od in made):
            raise _Unproven  # BUILD set state: the RestrictedUnpickler checks it first
        raise Refused(TOO_MANY_TENSORS.format(MAX_TENSORS))

    def wrap(f: Any) -> Callable[..., Any]:
        if id(f) in makers:

            def make_tensor(*args: Any) -> Any:
                count = tensors[0] = tensors[0] + 1
                if count > MAX_TENSORS:
                    refuse_tensors()
                if progress is not None and count % REPORT_EVERY == 0:
                    progress(count)
                return f(*args)

            return make_tensor
        if f is collections.OrderedDict and proof.builds:

            def ordered_dict(*args: Any) -> Any:
                made.append(od := collections.OrderedDict(*args))
                return od

            return ordered_dict

        def call(*args: Any) -> Any:
            return f(*args)

        return call

    resolved = {key: wrap(f) if id(f) in calls else f for key, f in stand_ins.items()}
    wrappers = {id(f) for key, f in resolved.items() if f is not stand_ins[key]}
    mapped = proof.protocol < 3

    def find_class(module: str, name: str) -> Any:
        if mapped:  # Python 2 names, as pickle maps them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        found = resolved.get((module, name))
        if found is None:
            raise _Unproven
        return found

    def resolve(pid: Any) -> Any:
        if persistent_load is None or (type(pid) is tuple and tuple in map(type, pid)):
            raise _Unproven
        try:
            return persistent_load(pid)
        except NotPlain:
            raise _Unproven from None

    unpickler = _HookedUnpickler(io.BytesIO(data[start : proof.end]), find_class, resolve)
    try:
        obj = unpickler.load()
    except (_Unproven, Refused, SourceError):
        raise
    except Exception:  # whatever stopped it, the RestrictedUnpickler says what it is
        raise _Unproven from None
    finally:
        del unpickler
    for od in made:
        for key in od.__dict__:
            if type(key) is not str or key.startswith("__") or hasattr(OrderedDict, key):
                raise _Unproven
    if _holds_any(obj, wrappers, made):
        raise _Unproven
    return obj


class _HookedUnpickler(pickle.Unpickler):
    """Python's C unpickler, with find_class and persistent_load given by `_load_proven`."""

    def __init__(
        self, file: BinaryIO, find: Callable[[str, str], Any], resolve: Callable[[Any], Any]
    ) -> None:
        super().__init__(file, encoding="utf-8")  # as torch.load reads Python 2 strings
        self._find = find
        self._resolve = resolve

    def find_class(self, module: str, name: str) -> Any:
        return self._find(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self._resolve(pid)


def _holds_any(obj: Any, ids: set[int], extra: Iterable[Any]) -> bool:
    """Whether an object of `ids` is inside `obj` or the attributes of `extra` (walked as
    containers are: dicts, lists, tuples, sets; a loop, not recursion)."""
    seen: set[int] = set()
    stack = [obj, *(od.__dict__ for od in extra)]
    while stack:
        x = stack.pop()
        if id(x) in ids:
            return True
        if id(x) in seen or not isinstance(x, (dict, list, tuple, set, frozenset)):
            continue
        seen.add(id(x))
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        else:
            stack.extend(x)
    return False
