"""A linear pre-scan of a pickle that proves what the restricted unpickler proves while it
builds objects, so that Python's C unpickler may build them instead (pickle_reader.py,
`load_restricted`): ten to twenty times faster, and nothing is built before the proof.

The scan reads every opcode once and builds nothing. It keeps, for every item on the stack
and in the memo, only what the proof needs: how deep a tuple nests (0 for anything that is
not a tuple) and whether the item is what a call returned. A pickle is proven when:

- its bytes are opcodes of protocols 0 to 5 up to STOP, each whole, inside its frame, with
  text arguments in the one spelling both unpicklers read alike (Python's reads `I010` as
  10, C's as octal 8), and every length inside the data;
- it uses none of the opcodes whose meaning the stand-ins do not give it: INST, OBJ, NEWOBJ,
  NEWOBJ_EX (they make objects of a class), EXT1/2/4 (the extension registry), the
  out-of-band buffers of protocol 5, and PROTO anywhere but first;
- every memo index it sets is below `memo_bound`: the C unpickler's memo is an array
  as long as the largest index (a 5-byte LONG_BINPUT of 2**32 asks for 32 GB);
- no tuple nests deeper than MAX_TUPLE_NESTING (hashing one, as a dict key or set member,
  recurses in C and kills the process);
- BUILD sets a dict of state only on what a call returned (so on a stand-in's product: an
  OrderedDict, whose attributes the loader then checks, or an object that refuses state);
- it never takes more items than the stack holds above its mark.

What the C unpickler then still does is bounded by hooks: globals resolve only to stand-ins
(find_class), every call is a stand-in that counts tensors against MAX_TENSORS and checks
its arguments, storages come from the reader's persistent_load. Anything the scan does not
prove returns None, and the pickle is read by the restricted pure-Python unpickler instead.

Torch's pickles are mostly one tensor after another, each the same 25 to 30 opcodes around
different numbers: `_rebuild_tensor_v2` called on a storage reference, an offset, a shape,
strides, requires_grad and an empty OrderedDict. Those runs are matched whole by a regular
expression (C speed), as `_TENSOR_CALL` describes, and stepped over with their known effect;
everything else is stepped through opcode by opcode.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

from ..limits import MAX_TUPLE_NESTING

_CALL = -1  # what a call returned (REDUCE): the only thing BUILD may set state on
_DICT = -2  # a dict the pickle made (EMPTY_DICT, DICT): the only state BUILD may set
# Depth assumed for an item the memo got inside a matched tensor call: the deepest tuple such
# a call makes (its arguments hold its shape and strides, tuples of integers)
_IN_CALL = 2


@dataclass(frozen=True)
class Proof:
    """What the scan proved of one pickle."""

    end: int  # offset just past its STOP
    protocol: int  # from its PROTO opcode (0 without one): how find_class maps old names
    builds: int  # BUILD opcodes (0: no attribute can be set on anything)
    opcodes: int  # opcodes stepped through one by one (the rest were matched in bulk)
    calls_matched: int  # tensor calls matched whole


# -- text arguments: the spellings both unpicklers read the same way -------------------------

_INT_TEXT = re.compile(rb"(?:-?[1-9][0-9]{0,4000}|0|00|01)\n")  # I: 00 and 01 are False, True
_LONG_TEXT = re.compile(rb"-?(?:0|[1-9][0-9]{0,4000})L?\n")
_FLOAT_TEXT = re.compile(rb"(?:-?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|-?inf|nan)\n")
_INDEX_TEXT = re.compile(rb"[0-9]{1,10}\n")  # PUT and GET


def _memo_index_class(bound_bits: int) -> bytes:
    """A regular expression of the 4 little-endian bytes of an index below 2**bound_bits."""
    out = []
    for byte in range(4):
        low = 8 * byte
        if bound_bits >= low + 8:
            out.append(rb"[\x00-\xff]")
        elif bound_bits <= low:
            out.append(rb"\x00")
        else:
            out.append(b"[\\x00-" + b"\\x%02x" % ((1 << (bound_bits - low)) - 1) + b"]")
    return b"".join(out)


# -- tensor calls, matched whole ----------------------------------------------------------

_ANY = rb"[\x00-\xff]"
# an integer: BININT1, BININT2, BININT, or LONG1 of 1 to 8 bytes
_LONG1 = b"|".join(b"\\x%02x" % n + _ANY + b"{%d}" % n for n in range(1, 9))
_INT = b"(?:K" + _ANY + b"|M" + _ANY + b"{2}|J" + _ANY + b"{4}|\\x8a(?:" + _LONG1 + b"))"
_GET = b"(?:h" + _ANY + b"|j" + _ANY + b"{4})"
# a storage key: BINUNICODE of 1 to 10 decimal digits, its length matching
_DIGITS = b"|".join(b"\\x%02x\\x00\\x00\\x00[0-9]{%d}" % (n, n) for n in range(1, 11))
_KEY = b"X(?:" + _DIGITS + b")"
# a tuple of 0 to 64 integers: EMPTY_TUPLE, TUPLE1, TUPLE2, TUPLE3, or MARK ... TUPLE
_INTS = (
    b"(?:\\)|" + _INT + b"\\x85|" + _INT + b"{2}\\x86|" + _INT + b"{3}\\x87|\\("
    + _INT + b"{4,64}t)"
)  # fmt: skip


def _tensor_call(put: bytes) -> bytes:
    """torch.save's opcodes for `_rebuild_tensor_v2(storage, offset, shape, stride,
    requires_grad, OrderedDict())` once the globals and strings it uses are memoised:

        GET(rebuild) MARK MARK GET('storage') GET(type) KEY PUT GET(location) INT TUPLE PUT
        BINPERSID INT SHAPE PUT SHAPE PUT BOOL GET(OrderedDict) EMPTY_TUPLE REDUCE PUT
        TUPLE PUT REDUCE PUT

    (KEY: the storage's key, decimal digits; SHAPE: a tuple of 0 to 64 integers; PUTs
    optional; a `_rebuild_parameter` call around it adds GET MARK ... BOOL GET EMPTY_TUPLE
    REDUCE PUT TUPLE PUT REDUCE PUT.) Its net effect: one item pushed, what a call
    returned. The tuples it makes hold integers, strings, a storage and what calls
    returned, once the hooks have checked them: the storage reference is checked by
    persistent_load right after it is made (before anything can hash it), and the calls
    check every argument (stand_ins.py). So none nests deeper than 2 (the arguments, which
    hold the shape)."""
    p = b"(?:" + put + b")?"
    storage_ref = rb"\(\(" + _GET + _GET + _KEY + p + _GET + _INT + b"t" + p + b"Q"
    ordered_dict = _GET + rb"\)R" + p
    tensor = (
        _GET + storage_ref + _INT + _INTS + p + _INTS + p + rb"[\x88\x89]" + ordered_dict
        + b"t" + p + b"R" + p
    )  # fmt: skip
    parameter = _GET + rb"\(" + tensor + rb"[\x88\x89]" + ordered_dict + b"t" + p + b"R" + p
    return b"(?:" + parameter + b"|" + tensor + b")"


_CALL_PATTERNS: dict[int, re.Pattern[bytes]] = {}


def _tensor_call_pattern(bound_bits: int) -> re.Pattern[bytes]:
    pattern = _CALL_PATTERNS.get(bound_bits)
    if pattern is None:
        put = rb"q[\x00-\xff]|r" + _memo_index_class(bound_bits)
        pattern = _CALL_PATTERNS[bound_bits] = re.compile(_tensor_call(put), re.DOTALL)
    return pattern


def memo_bound_bits(data_length: int) -> int:
    """log2 of the memo indices allowed: at least 256, and no more than a pickle of this
    length can set with distinct PUTs (each takes 2 bytes at least) rounded up to a power
    of two. The C unpickler's memo then takes at most 16 bytes per pickle byte."""
    return max(8, (data_length // 2).bit_length())


# -- the scan ---------------------------------------------------------------------------

_UINT4 = struct.Struct("<I")
_INT4 = struct.Struct("<i")
_UINT8 = struct.Struct("<Q")

# opcodes that push one item that is not a tuple, with the length of their argument
_PUSH_FIXED = {
    ord("K"): 2, ord("M"): 3, ord("J"): 5, ord("N"): 1, 0x88: 1, 0x89: 1,
    ord("G"): 9, ord("]"): 1, 0x8F: 1,
}  # fmt: skip
# opcodes that push one string or bytes item: (length of the length field, its struct)
_PUSH_COUNTED = {
    ord("X"): _UINT4, ord("T"): _INT4, ord("B"): _UINT4,
    0x8D: _UINT8, 0x8E: _UINT8, 0x96: _UINT8,
}  # fmt: skip
_PUSH_SHORT = {ord("U"), ord("C"), 0x8C, 0x8A}  # one-byte length (LONG1 too)
_NEVER = {
    ord("i"), ord("o"), 0x81, 0x92,  # INST OBJ NEWOBJ NEWOBJ_EX: objects made by a class
    0x82, 0x83, 0x84,  # EXT1 EXT2 EXT4: the extension registry
    0x97, 0x98,  # NEXT_BUFFER READONLY_BUFFER: out-of-band buffers
}  # fmt: skip


def scan(data: Any, start: int = 0, memo_bound_bits_: int | None = None) -> Proof | None:
    """Prove the pickle that starts at `start` of `data` (bytes, or a read-only mmap), or
    None when it cannot be proven (see the module docstring). Never raises."""
    try:
        return _scan(data, start, memo_bound_bits_)
    except (IndexError, KeyError, struct.error, ValueError, OverflowError, MemoryError):
        return None


def _scan(data: Any, start: int, bits: int | None) -> Proof | None:
    n = len(data)
    if bits is None:
        bits = memo_bound_bits(n - start)
    bound = 1 << bits
    match_call = _tensor_call_pattern(bits).match
    stack: list[int] = []  # kinds of the items above the innermost mark
    marks: list[list[int]] = []  # the stacks below each mark
    memo: dict[int, int] = {}
    calls = 0
    builds = 0
    steps = 0
    protocol = 0
    frame_end = -1  # the current frame's end, or -1 outside frames
    i = start
    limit = MAX_TUPLE_NESTING
    while True:
        if i >= n:
            return None
        op = data[i]
        if i < frame_end and op in (0x68, 0x6A):  # no tensor call spans a frame: not matched
            pass
        elif op in (0x68, 0x6A):  # BINGET or LONG_BINGET: a tensor call starts so
            m = match_call(data, i)
            if m is not None:
                calls += 1
                i = m.end()
                stack.append(_CALL)
                continue
        steps += 1
        # -- the most frequent first -------------------------------------------------------
        if op == 0x72:  # LONG_BINPUT
            (index,) = _UINT4.unpack_from(data, i + 1)
            if index >= bound or not stack:
                return None
            memo[index] = stack[-1]
            length = 5
        elif op == 0x71:  # BINPUT
            if not stack:
                return None
            memo[data[i + 1]] = stack[-1]
            length = 2
        elif op == 0x68 or op == 0x6A:  # BINGET, LONG_BINGET
            if op == 0x68:
                index, length = data[i + 1], 2
            else:
                (index,) = _UINT4.unpack_from(data, i + 1)
                length = 5
            kind = memo.get(index)
            if kind is None:
                if not calls:
                    return None  # never set: the unpickler fails
                kind = _IN_CALL
            elif calls and kind < _IN_CALL:
                kind = _IN_CALL  # a tensor call may have set it again since
            stack.append(kind)
        elif op in _PUSH_FIXED:
            stack.append(0)
            length = _PUSH_FIXED[op]
        elif op == 0x28:  # MARK
            marks.append(stack)
            stack = []
            length = 1
        elif op in _PUSH_COUNTED:
            field = _PUSH_COUNTED[op]
            (size,) = field.unpack_from(data, i + 1)
            if size < 0:
                return None
            length = 1 + field.size + size
            stack.append(0)
        elif op in _PUSH_SHORT:
            length = 2 + data[i + 1]
            stack.append(0)
        elif op == 0x8B:  # LONG4
            (size,) = _INT4.unpack_from(data, i + 1)
            if size < 0:
                return None
            length = 5 + size
            stack.append(0)
        elif op == 0x74:  # TUPLE
            depth = max(stack, default=0) if stack else 0
            stack = marks.pop()
            depth = depth + 1 if depth > 0 else 1
            if depth > limit:
                return None
            stack.append(depth)
            length = 1
        elif op == 0x85 or op == 0x86 or op == 0x87:  # TUPLE1, TUPLE2, TUPLE3
            count = op - 0x84
            if len(stack) < count:
                return None
            depth = max(stack[-count:])
            del stack[-count:]
            depth = depth + 1 if depth > 0 else 1
            if depth > limit:
                return None
            stack.append(depth)
            length = 1
        elif op == 0x29:  # EMPTY_TUPLE: a tuple of depth 1, as the restricted reader counts
            stack.append(1)
            length = 1
        elif op == 0x52:  # REDUCE
            if len(stack) < 2:
                return None
            del stack[-1]
            stack[-1] = _CALL
            length = 1
        elif op == 0x51:  # BINPERSID
            if not stack:
                return None
            stack[-1] = 0
            length = 1
        elif op == 0x75 or op == 0x65 or op == 0x90:  # SETITEMS, APPENDS, ADDITEMS
            stack = marks.pop()
            if not stack:
                return None
            length = 1
        elif op == 0x73:  # SETITEM
            if len(stack) < 3:
                return None
            del stack[-2:]
            length = 1
        elif op == 0x61:  # APPEND
            if len(stack) < 2:
                return None
            del stack[-1]
            length = 1
        elif op == 0x62:  # BUILD: a dict of state, on what a call returned
            if len(stack) < 2 or stack[-2] != _CALL or stack[-1] != _DICT:
                return None
            del stack[-1]
            builds += 1
            length = 1
        elif op == 0x94:  # MEMOIZE
            if not stack or calls or len(memo) >= bound:
                return None  # a matched call sets indices the scan did not count
            memo[len(memo)] = stack[-1]
            length = 1
        elif op == 0x93:  # STACK_GLOBAL
            if len(stack) < 2:
                return None
            del stack[-1]
            stack[-1] = 0
            length = 1
        elif op == 0x7D:  # EMPTY_DICT
            stack.append(_DICT)
            length = 1
        elif op == 0x64:  # DICT
            stack = marks.pop()
            stack.append(_DICT)
            length = 1
        elif op == 0x6C or op == 0x91:  # LIST, FROZENSET
            stack = marks.pop()
            stack.append(0)
            length = 1
        elif op == 0x30:  # POP (with nothing above the mark: the mark)
            if stack:
                del stack[-1]
            else:
                stack = marks.pop()
            length = 1
        elif op == 0x31:  # POP_MARK
            stack = marks.pop()
            length = 1
        elif op == 0x32:  # DUP
            if not stack:
                return None
            stack.append(stack[-1])
            length = 1
        elif op == 0x2E:  # STOP
            if not stack:
                return None
            return Proof(i + 1, protocol, builds, steps, calls)
        elif op == 0x80:  # PROTO: first, or not at all
            if i != start or data[i + 1] > 5:
                return None
            protocol = data[i + 1]
            length = 2
        elif op == 0x95:  # FRAME
            if i < frame_end and i + 9 != frame_end:
                return None  # a new frame before the current one ends
            (size,) = _UINT8.unpack_from(data, i + 1)
            frame_end = i + 9 + size
            if frame_end > n:
                return None
            i += 9
            continue
        elif op in _NEVER:
            return None
        else:  # text arguments, up to a newline (protocols 0 and 1)
            end = data.find(b"\n", i + 1)
            if end < 0:
                return None
            length = end + 1 - i
            if op == 0x63:  # GLOBAL: two lines
                end = data.find(b"\n", end + 1)
                if end < 0:
                    return None
                length = end + 1 - i
                stack.append(0)
            elif op == 0x70 or op == 0x67:  # PUT, GET
                if _INDEX_TEXT.fullmatch(data, i + 1, end + 1) is None:
                    return None
                index = int(data[i + 1 : end])
                if op == 0x70:
                    if index >= bound or not stack:
                        return None
                    memo[index] = stack[-1]
                else:
                    kind = memo.get(index)
                    if kind is None:
                        if not calls:
                            return None
                        kind = _IN_CALL
                    elif calls and kind < _IN_CALL:
                        kind = _IN_CALL
                    stack.append(kind)
            elif op == 0x49:  # INT
                if _INT_TEXT.fullmatch(data, i + 1, end + 1) is None:
                    return None
                stack.append(0)
            elif op == 0x4C:  # LONG
                if _LONG_TEXT.fullmatch(data, i + 1, end + 1) is None:
                    return None
                stack.append(0)
            elif op == 0x46:  # FLOAT
                if _FLOAT_TEXT.fullmatch(data, i + 1, end + 1) is None:
                    return None
                stack.append(0)
            elif op in (0x53, 0x56, 0x50):  # STRING, UNICODE, PERSID
                stack.append(0)
            else:
                return None  # not an opcode
        if i < frame_end < i + length:
            return None  # it runs past the end of its frame
        i += length
