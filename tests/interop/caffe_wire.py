"""Protobuf's wire format by hand, for Caffe's .caffemodel files in the tests: a NetParameter whose
V2 layers (field 100) carry name (1), type (2) and blobs (7: BlobProto with shape 7, packed dim 1,
and packed float data 5). No Caffe and no protobuf package needed."""
import numpy as np


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):  # length-delimited (wire type 2)
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def string(num, text):
    return field(num, text.encode())


def blob(a):
    a = np.asarray(a, np.float32)
    shape = field(1, b"".join(varint(d) for d in a.shape))  # BlobShape.dim, packed
    return field(7, shape) + field(5, a.astype("<f4").tobytes())  # BlobProto.shape, data packed


def layer_blobs(name, typ, blobs):
    """One NetParameter.layer with its blobs."""
    body = string(1, name) + string(2, typ) + b"".join(field(7, blob(b)) for b in blobs)
    return field(100, body)


def net_blobs(layers, name="net"):
    """A .caffemodel: NetParameter.name and (name, type, blobs) layers."""
    return string(1, name) + b"".join(layer_blobs(*l) for l in layers)
