"""Content for the benchmark, generated in Python.

Raw blobs are pseudo-random bytes written straight to files (they are
pushed with the registry API and served as static files).  The image is
an OCI layout with gzip tar layers, which skopeo pushes.  Everything is
deterministic for its seed; one run's seeds differ from another's only if
the caller says so.
"""

import gzip
import hashlib
import io
import json
import os
import random
import tarfile

MiB = 1024 * 1024

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

REF_NAME = "org.opencontainers.image.ref.name"


class BlobFile:
    """A blob on disk: its path, digest and size."""

    def __init__(self, path, hexdigest, size, media_type):
        self.path = path
        self.hex = hexdigest
        self.digest = "sha256:" + hexdigest
        self.size = size
        self.media_type = media_type

    def descriptor(self):
        return {"mediaType": self.media_type, "digest": self.digest,
                "size": self.size}


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_random(directory, seed, size, chunk=4 * MiB):
    """A file of `size` pseudo-random bytes named by its sha256."""
    os.makedirs(directory, exist_ok=True)
    rng = random.Random("ocimirror-bench:" + seed)
    h = hashlib.sha256()
    tmp = os.path.join(directory, ".tmp-" + seed)
    with open(tmp, "wb") as f:
        left = size
        while left > 0:
            data = rng.randbytes(min(chunk, left))
            h.update(data)
            f.write(data)
            left -= len(data)
    hexd = h.hexdigest()
    path = os.path.join(directory, hexd)
    os.replace(tmp, path)
    return BlobFile(path, hexd, size, "application/octet-stream")


def _write_bytes(directory, data, media_type):
    hexd = hashlib.sha256(data).hexdigest()
    path = os.path.join(directory, hexd)
    with open(path, "wb") as f:
        f.write(data)
    return BlobFile(path, hexd, len(data), media_type)


def _layer_tar(seed, size):
    """A reproducible tar holding one file of random bytes."""
    rng = random.Random("ocimirror-bench-layer:" + seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("data")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        d.mtime = 0
        t.addfile(d)
        info = tarfile.TarInfo("data/%s.bin" % seed)
        info.size = size
        info.mode = 0o644
        info.mtime = 0
        t.addfile(info, io.BytesIO(rng.randbytes(size)))
    return buf.getvalue()


def write_image_layout(directory, name, tag, n_layers, layer_size):
    """An OCI layout with one single-platform image of n_layers layers of
    about layer_size bytes each.  Returns (manifest, config, layers)."""
    blobs = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    layers = []
    diff_ids = []
    for i in range(n_layers):
        tar = _layer_tar("%s-%d" % (name, i), layer_size)
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        # random data does not compress: level 0 keeps this fast
        gz = gzip.compress(tar, compresslevel=0, mtime=0)
        layers.append(_write_bytes(blobs, gz, MT_OCI_LAYER_GZIP))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/true"],
                   "Labels": {"ocimirror.bench": name}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z",
                     "created_by": "ocimirror bench layer %d" % i}
                    for i in range(n_layers)],
    }
    cfg = _write_bytes(blobs, _canonical(config), MT_OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": cfg.descriptor(),
        "layers": [l.descriptor() for l in layers],
    }
    man = _write_bytes(blobs, _canonical(manifest), MT_OCI_MANIFEST)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    desc = man.descriptor()
    desc["annotations"] = {REF_NAME: tag}
    index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
             "manifests": [desc]}
    with open(os.path.join(directory, "index.json"), "wb") as f:
        f.write(_canonical(index))
    return man, cfg, layers


def write_store_blobs(root, count, seed, min_size=256, max_size=2048):
    """count blobs of min_size..max_size pseudo-random bytes straight into
    a store's layout, root/sha256/<2 hex>/<64 hex>, each named by its own
    sha256 (what the fetcher would have committed).  Each takes one block
    of a 4 KiB-block filesystem.  Returns their hex digests in the order
    written."""
    rng = random.Random("ocimirror-bench-store:" + seed)
    shard = os.path.join(root, "sha256")
    for i in range(256):
        os.makedirs(os.path.join(shard, "%02x" % i), exist_ok=True)
    out = []
    for _ in range(count):
        data = rng.randbytes(rng.randint(min_size, max_size))
        hexd = hashlib.sha256(data).hexdigest()
        with open(os.path.join(shard, hexd[:2], hexd), "wb") as f:
            f.write(data)
        out.append(hexd)
    return out


def store_put(root, data):
    """data into a store's layout under its sha256; a BlobFile."""
    hexd = hashlib.sha256(data).hexdigest()
    d = os.path.join(root, "sha256", hexd[:2])
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, hexd)
    with open(path, "wb") as f:
        f.write(data)
    return BlobFile(path, hexd, len(data), "application/octet-stream")


def write_store_sized(root, total, seed, min_size, max_size):
    """Blobs of min_size..max_size bytes (uniform) straight into a store's
    layout until they hold at least total bytes, each named by its own
    sha256.  The content: a 16-byte header of its own, then pseudo-random
    bytes of one shared pool at an offset of its own: every file differs,
    and generating them costs little more than writing and hashing them
    (what the scrub reads: its speed does not depend on the bytes).
    Returns their BlobFiles in the order written."""
    rng = random.Random("ocimirror-bench-sized:" + seed)
    pool = rng.randbytes(2 * max_size)
    out = []
    done = 0
    while done < total:
        size = rng.randint(min_size, max_size)
        head = b"%016x" % len(out)
        off = rng.randrange(0, len(pool) - size)
        data = head + pool[off:off + size - len(head)]
        out.append(store_put(root, data))
        done += size
    return out


def _text_pool(rng, pieces, size):
    """Text-like pieces (words of a random vocabulary, lines of random
    length): what deflate compresses about as much as a layer's files."""
    letters = b"abcdefghijklmnopqrstuvwxyz_/.-0123456789"
    vocab = [bytes(rng.choice(letters) for _ in range(rng.randint(2, 12)))
             for _ in range(4096)]
    out = []
    for _ in range(pieces):
        parts, n = [], 0
        while n < size:
            w = rng.choice(vocab)
            sep = b"\n" if rng.random() < 0.1 else b" "
            parts += [w, sep]
            n += len(w) + 1
        out.append(b"".join(parts)[:size])
    return out


def write_store_images(root, seed, n_images, n_layers, layer_size,
                       wrong_diff_id=None):
    """n_images image manifests straight into a store's layout, with their
    configs (rootfs.diff_ids) and n_layers gzip tar layers (level 6, as
    docker's) of about layer_size bytes of text each, and each manifest's
    types/ line, as the fetcher stores a pulled image.  wrong_diff_id =
    (image, layer): that config names another diff_id for that layer.
    Returns [{"manifest", "config", "layers": [BlobFile], "tar_bytes"}]."""
    rng = random.Random("ocimirror-bench-images:" + seed)
    piece = 64 * 1024
    pool = _text_pool(rng, 32, piece)
    images = []
    for i in range(n_images):
        layers, diff_ids, tar_bytes = [], [], 0
        for j in range(n_layers):
            # pieces are longer than deflate's 32 KiB window: shuffling
            # them repeats nothing deflate could find
            body = b"".join(rng.choice(pool)
                            for _ in range(-(-layer_size // piece)))
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w",
                              format=tarfile.PAX_FORMAT) as t:
                info = tarfile.TarInfo("data/%s-%d-%d.txt" % (seed, i, j))
                info.size = len(body)
                info.mode = 0o644
                info.mtime = 0
                t.addfile(info, io.BytesIO(body))
            tar = buf.getvalue()
            tar_bytes += len(tar)
            diff = hashlib.sha256(tar).hexdigest()
            if wrong_diff_id == (i, j):
                diff = hashlib.sha256(tar + b"\0").hexdigest()
            diff_ids.append("sha256:" + diff)
            gz = gzip.compress(tar, compresslevel=6, mtime=0)
            b = store_put(root, gz)
            b.media_type = MT_OCI_LAYER_GZIP
            layers.append(b)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Labels": {"ocimirror.bench": "%s-%d" % (seed, i)}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        cfg = store_put(root, _canonical(config))
        cfg.media_type = MT_OCI_CONFIG
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": cfg.descriptor(),
            "layers": [l.descriptor() for l in layers],
        }
        man = store_put(root, _canonical(manifest))
        man.media_type = MT_OCI_MANIFEST
        tdir = os.path.join(root, "types", "sha256", man.hex[:2])
        os.makedirs(tdir, exist_ok=True)
        with open(os.path.join(tdir, man.hex), "w") as f:
            f.write(MT_OCI_MANIFEST + "\n")
        images.append({"manifest": man, "config": cfg, "layers": layers,
                       "tar_bytes": tar_bytes})
    return images
