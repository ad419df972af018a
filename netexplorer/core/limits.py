"""The limits a file's own numbers are checked against before netexplorer acts on them.

A checkpoint names sizes, counts and depths, and a reader that believes them allocates, loops
or recurses as much as the file says. Each limit here is checked before the work it bounds,
and the message of a refusal names the limit and why it is there. Legitimate files sit far
below every one of them; each comment says how far.

No limit is a clock: work is bounded by what the file holds, so the same file opens or is
refused the same way on a fast machine and a loaded one.
"""

from __future__ import annotations

MB = 10**6  # limits a message names are round in the units it names them in

# What a refusal of a crafted or damaged file tells the user to do
GET_IT_AGAIN = "the file is crafted or damaged: get it again from a source you trust"

# torch sizes, strides and element counts are int64, numpy's are intp: a dimension, an element
# count or a byte count past this cannot be held by either (a file naming one is damaged)
MAX_SIZE = 2**63 - 1

# (Dimensions: numpy 2 holds at most 64, numpy 1 32, torch has no such limit; a tensor of
# more is listed with its shape and the reason it has no values: handles.values_problem.)

# Tensors in one source, over all its shards. The largest public checkpoints hold about 100,000
# (a mixture of experts with hundreds of experts per layer). Every tensor costs a tree node, a
# line of --summary and statistics in --json: measured here (bench/headers.py, 2 loaded
# cores), a million two-element tensors in one safetensors file open to the core's tree in
# 8-13 s and 1.3 GB, --summary takes 13 s and 1.5 GB, --json 2 minutes and 7.7 GB (statistics
# of each, held until printed), and the window's tree must hold them all too. So a million
# is not yet opened; past the limit, a safetensors header is refused before it is parsed, a
# pickle once it is scanned and its 250,001st tensor made (a crafted zip of a million views
# of one storage: 4 s).
MAX_TENSORS = 250_000

# Tuples inside tuples in a pickle. Hashing a tuple (a dict key, a set element) recurses in C
# with no depth check: a million levels overflow the C stack and kill the process; printing
# one of a thousand levels exhausts Python's recursion limit. torch.save writes a few levels.
MAX_TUPLE_NESTING = 100

# Bytes a pickle may ask to allocate by naming a size instead of carrying the data
# (`builtins.bytearray(N)`, `torch.FloatTensor(N)`, a storage of N elements that torch
# allocates before reading it): a legitimate file carries its data, so a few MB cover every
# empty-tensor idiom of old files while a 300-byte file can no longer ask for 3 GB.
MAX_CLAIMED_BYTES = 64 * MB

# A pickle read into memory (a torch zip's data.pkl, a legacy file's pickles): objects built
# from it take up to ~60 bytes per pickle byte (an empty list from one opcode). A million
# tensors pickle to about 60 MB.
MAX_PICKLE_BYTES = 256 * MB

# A compressed archive member inflates at most this many times its compressed size (plus a
# floor for small members); torch.save never compresses, so only re-zipped archives meet it,
# and text-like pickles deflate about 5-20x. A zip bomb inflates 1,000x.
MAX_INFLATION = 50
INFLATION_FLOOR = 16 * MB

# JSON files of a Hugging Face folder. An index of 250,000 tensor names is about 20 MB; a
# config.json is a few KB (the largest, with vocabularies inline, a few MB).
MAX_INDEX_BYTES = 100 * MB
MAX_CONFIG_BYTES = 16 * MB

# Entries a checkpoint may add by placing one container of tensors at further places (a state
# dict saved as both `model` and `ema` is two branches). A file can place one list at every
# level of a nesting, which makes 2**depth paths from a few bytes.
MAX_SHARED_ENTRIES = 10_000

# Elements of a sparse tensor shown densely (to_dense allocates them all): 2**28 float32 are
# 1 GB, more than a heatmap or statistics of a sparse tensor are worth
MAX_DENSE_ELEMENTS = 1 << 28

# Shards of one index (after their names are normalised: `./s.bin` and `s.bin` are one file)
MAX_SHARDS = 10_000


def size_text(n: int | float) -> str:
    """`3.0 GB`, `640 KB`, `12 bytes`: a byte count for a message."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def count_text(n: int) -> str:
    """`1,234` for a count, `about 2**70` for one too long to read (or to convert: Python
    refuses to print integers of more than 4,300 digits)."""
    return f"{n:,}" if n < 10**18 else f"about 2**{n.bit_length() - 1}"
