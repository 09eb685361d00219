"""Hand-made regression inputs for findings a mutating fuzzer cannot reach on its own, or whose
effect is a wrong answer rather than a crash: manifests whose net_hash (FNV-1a over the tensors'
names and shapes, engine/checkpoint/state_layout.cc) is recomputed after their dims were made
absurd, and IDX dims whose product wraps. Written to tests/fuzz/crashes/<target>/hand-<what>;
committed. usage: make_regressions.py   (RUCHE_PYTHON: protobuf)"""
import pathlib
import struct
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(["protoc", f"-I{ROOT}", f"--python_out={tmp}",
                    str(ROOT / "engine/proto/ruche.proto")], check=True)
    sys.path.insert(0, str(pathlib.Path(tmp) / "engine/proto"))
    import ruche_pb2  # noqa: E402


def fnv(tensors):
    h = 0xcbf29ce484222325
    def mix(data):
        nonlocal h
        for b in data:
            h ^= b
            h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    for name, dtype, dims in tensors:
        mix(name.encode() + b"\0")
        mix(dtype.encode())
        mix(struct.pack("<q", len(dims)))
        for d in dims:
            mix(struct.pack("<q", d))
    return h


def manifest(tensors, total=None, shards=()):
    m = ruche_pb2.CheckpointManifest()
    m.format_version = 1
    m.step = 2
    offset = 0
    for name, dtype, dims, nbytes in tensors:
        t = m.tensors.add()
        t.name, t.dtype, t.offset, t.bytes = name, dtype, offset, nbytes
        t.dims.extend(dims)
        offset += nbytes
    m.total_bytes = offset if total is None else total
    m.net_hash = fnv([(n, d, dims) for n, d, dims, _ in tensors])
    for file, begin, end in shards:
        s = m.shards.add()
        s.file, s.begin, s.end, s.crc32c = file, begin, end, 0
    return m.SerializeToString()


def put(target, name, data):
    d = ROOT / "tests/fuzz/crashes" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"hand-{name}").write_bytes(data)


# dims whose product overflows int64 (numel was signed overflow, undefined behaviour).
put("manifest", "numel-overflow", manifest([("w", "f32", [1 << 40, 1 << 40, 16], 0)]))
# A consistent manifest announcing 4 TiB of state: load_checkpoint allocated it before looking
# at the shard file (a bad_alloc, not a user error).
huge = 1 << 40
m = manifest([("w", "f32", [huge // 4], huge)], shards=[("shard-00000-of-00001.bin", 0, huge)])
put("checkpoint", "huge-state", struct.pack("<I", len(m)) + m + b"\0" * 16)
# IDX dims of 2^31 x 2^31 x 4 multiply to 0 modulo 2^64: read as an empty file of 2^64 images.
put("idx", "dims-wrap", struct.pack(">IIII", 0x803, 1 << 31, 1 << 31, 4))
# A 16x16 JPEG whose header says 60000 x 60000: libjpeg fills the missing data with grey, and
# ruche allocated the 10.8 GB of RGB before reading a row.
import io  # noqa: E402

from PIL import Image  # noqa: E402

b = io.BytesIO()
Image.new("RGB", (16, 16), (200, 30, 30)).save(b, "JPEG")
jpeg = bytearray(b.getvalue())
sof = jpeg.find(b"\xff\xc0")
jpeg[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
put("jpeg", "huge-header", bytes(jpeg))
