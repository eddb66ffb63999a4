"""Damages a .lathe artifact in place, for the corruption tests.

  corrupt-artifact.py FILE flip-description   one byte in the flatbuffer
  corrupt-artifact.py FILE flip-weights       one byte in the weight section
  corrupt-artifact.py FILE flip-magic         one byte of the magic number
  corrupt-artifact.py FILE version N          set the format version to N
  corrupt-artifact.py FILE header-size N      set the header's own size field
  corrupt-artifact.py FILE truncate N         keep the first N bytes
  corrupt-artifact.py FILE drop N             drop the last N bytes
  corrupt-artifact.py FILE description-size N set the header's description size
  corrupt-artifact.py FILE flip-description-rehash OFFSET
      flip one description byte at OFFSET (relative to the description) and
      store the matching checksum, so that the damage gets past the checksum
      and reaches the flatbuffer verifier and the plan validation

The header (runtime/artifact/FileHeader.h) is 64 bytes, little endian:
magic[8], version u32, header_size u32, description offset/size u64,
data offset/size u64, description checksum u64, data checksum u64.
"""
import struct
import sys

MASK = (1 << 64) - 1
P1 = 0x9E3779B185EBCA87
P2 = 0xC2B2AE3D27D4EB4F


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & MASK


def rnd(acc, word):
    return (rotl((acc + word * P2) & MASK, 31) * P1) & MASK


def checksum(b):
    """runtime/artifact/Checksum.cpp in Python."""
    lanes = [P1, P2, ~P1 & MASK, ~P2 & MASK]
    n = len(b)
    i = 0
    while i + 32 <= n:
        for lane in range(4):
            (w,) = struct.unpack_from("<Q", b, i + 8 * lane)
            lanes[lane] = rnd(lanes[lane], w)
        i += 32
    h = (rotl(lanes[0], 1) + rotl(lanes[1], 7) + rotl(lanes[2], 12) +
         rotl(lanes[3], 18) + n) & MASK
    for j in range(i, n):
        h = rnd(h, b[j])
    h ^= h >> 33
    h = (h * P2) & MASK
    h ^= h >> 29
    return h


def main():
    path, action = sys.argv[1], sys.argv[2]
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    with open(path, "rb") as f:
        data = bytearray(f.read())
    (desc_off, desc_size, data_off, data_size) = struct.unpack_from("<4Q", data, 16)
    if action == "flip-description":
        data[desc_off + desc_size // 2] ^= 0x10
    elif action == "flip-weights":
        data[data_off + data_size // 2] ^= 0x10
    elif action == "flip-magic":
        data[0] ^= 0x20
    elif action == "version":
        struct.pack_into("<I", data, 8, arg)
    elif action == "header-size":
        struct.pack_into("<I", data, 12, arg)
    elif action == "truncate":
        del data[arg:]
    elif action == "drop":
        del data[len(data) - arg:]
    elif action == "description-size":
        struct.pack_into("<Q", data, 24, arg)
    elif action == "flip-description-rehash":
        data[desc_off + arg] ^= 0xFF
        desc = bytes(data[desc_off:desc_off + desc_size])
        struct.pack_into("<Q", data, 48, checksum(desc))
    else:
        sys.exit("unknown action " + action)
    with open(path, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
