"""Test images built in Python: OCI image layouts with gzip tar layers.

Every image is deterministic for its seed: the same seed gives the same
bytes, hence the same digests, on every run.  A layout directory holds
oci-layout, index.json and blobs/sha256/<hex>, which is what
`skopeo copy oci:DIR:TAG docker://...` reads.
"""

import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import tarfile

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = ("application/vnd.docker.distribution.manifest.list.v2"
                  "+json")

REF_NAME = "org.opencontainers.image.ref.name"

# the first bytes of a zstd frame (RFC 8878)
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Blob:
    """Content plus the descriptor fields that point at it."""

    def __init__(self, media_type, data):
        self.media_type = media_type
        self.data = data
        self.digest = sha256_digest(data)
        self.size = len(data)

    @property
    def hex(self):
        return self.digest.split(":", 1)[1]

    def descriptor(self, **extra):
        d = {"mediaType": self.media_type, "digest": self.digest,
             "size": self.size}
        d.update(extra)
        return d

    def __repr__(self):
        return "Blob(%s, %s, %d)" % (self.media_type, self.digest[:19],
                                     self.size)


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def make_tar(seed, files):
    """An uncompressed tar of `files` ((name, size) pairs) whose contents
    are pseudo-random bytes derived from seed.  Metadata is fixed so the
    tar is byte-for-byte reproducible."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        dirs = set()
        for name, size in files:
            parent = os.path.dirname(name)
            if parent and parent not in dirs:
                info = tarfile.TarInfo(parent)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.mtime = 0
                t.addfile(info)
                dirs.add(parent)
            data = rng.randbytes(size)
            info = tarfile.TarInfo(name)
            info.size = size
            info.mode = 0o644
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data, level):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=level,
                       mtime=0) as g:
        g.write(data)
    return buf.getvalue()


class Layer:
    """A tar layer, gzip-compressed; zstd=True: a blob of the zstd layer
    type instead, the frame magic ahead of the tar (the standard library
    has no zstd compressor, and the mirror never unpacks zstd: it is
    stored, served and skipped by the deep scrub as it is)."""

    def __init__(self, seed, files, level=6, zstd=False):
        tar = make_tar(seed, files)
        self.diff_id = sha256_digest(tar)
        if zstd:
            self.blob = Blob(MT_OCI_LAYER_ZSTD, ZSTD_MAGIC + tar)
        else:
            self.blob = Blob(MT_OCI_LAYER_GZIP, gzip_bytes(tar, level))


class Image:
    """A single-platform image: layers, config, manifest.  diff_ids: what
    the config names instead of the layers' own (an image built wrong)."""

    def __init__(self, name, layers, arch="amd64", os_name="linux",
                 diff_ids=None):
        self.name = name
        self.layers = layers
        self.arch = arch
        self.os = os_name
        config = {
            "architecture": arch,
            "os": os_name,
            "created": "2024-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/usr/bin:/bin"],
                       "Cmd": ["/bin/true"],
                       "Labels": {"ocimirror.test": name}},
            "rootfs": {"type": "layers",
                       "diff_ids": (diff_ids if diff_ids is not None
                                    else [l.diff_id for l in layers])},
            "history": [{"created": "2024-01-01T00:00:00Z",
                         "created_by": "ocimirror e2e layer %d" % i}
                        for i in range(len(layers))],
        }
        self.config = Blob(MT_OCI_CONFIG, canonical_json(config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": self.config.descriptor(),
            "layers": [l.blob.descriptor() for l in layers],
        }
        self.manifest = Blob(MT_OCI_MANIFEST, canonical_json(manifest))

    @property
    def top(self):
        return self.manifest

    def blobs(self):
        """Every blob of the image, manifest included."""
        return [self.manifest, self.config] + [l.blob for l in self.layers]

    def layer_blobs(self):
        return [self.config] + [l.blob for l in self.layers]

    def platform(self):
        return {"architecture": self.arch, "os": self.os}


class Index:
    """A multi-platform image index over several images."""

    def __init__(self, name, images):
        self.name = name
        self.images = images
        index = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_INDEX,
            "manifests": [im.manifest.descriptor(platform=im.platform())
                          for im in images],
        }
        self.index = Blob(MT_OCI_INDEX, canonical_json(index))

    @property
    def top(self):
        return self.index

    def blobs(self):
        out = [self.index]
        for im in self.images:
            out += im.blobs()
        return out

    def layer_blobs(self):
        out = []
        for im in self.images:
            out += im.layer_blobs()
        return out


def write_layout(directory, tag, image):
    """Write image (Image or Index) as an OCI layout with one tag."""
    os.makedirs(os.path.join(directory, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    for b in image.blobs():
        p = os.path.join(directory, "blobs", "sha256", b.hex)
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(b.data)
    index = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": [image.top.descriptor(annotations={REF_NAME: tag})],
    }
    with open(os.path.join(directory, "index.json"), "wb") as f:
        f.write(canonical_json(index))
    return directory


def skopeo_push(layout_dir, tag, dest_hostport, repo, timeout=120):
    """Copy an OCI layout to a plain-http registry, digests unchanged."""
    cmd = ["skopeo", "--insecure-policy", "copy", "--all",
           "--preserve-digests", "--dest-tls-verify=false",
           "oci:%s:%s" % (layout_dir, tag),
           "docker://%s/%s:%s" % (dest_hostport, repo, tag)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("skopeo push failed (%d): %s\n%s"
                           % (p.returncode, " ".join(cmd), p.stderr))


# --- the images the suite uses -------------------------------------------

MiB = 1024 * 1024


def _layer(seed, files, level=6):
    return Layer("ocimirror-e2e:" + seed, files, level)


def build_catalog():
    """All test images, keyed by role.  Deterministic."""
    base = _layer("base", [("etc/base.txt", 3000), ("usr/lib/base.so",
                                                    200 * 1024)])
    multi = Image("multi", [
        base,
        _layer("multi-1", [("opt/one/a", 10 * 1024)]),
        _layer("multi-2", [("opt/two/big.bin", 3 * MiB)]),
        _layer("multi-3", [("opt/three/x", 1024), ("opt/three/y", 77)]),
        _layer("multi-4", [("opt/four/z", 5000)]),
    ])
    shared_a = Image("shared-a", [base, _layer("a-top", [("app/a", 4096)])])
    shared_b = Image("shared-b", [base, _layer("b-top", [("app/b", 8192)])])
    amd = Image("plat-amd64", [_layer("plat-amd64", [("bin/amd", 20000)])],
                arch="amd64")
    arm = Image("plat-arm64", [_layer("plat-arm64", [("bin/arm", 30000)])],
                arch="arm64")
    plat = Index("plat", [amd, arm])
    # Random data does not compress: level 0 keeps building it fast.
    large = Image("large", [_layer("large", [("data/large.bin", 64 * MiB)],
                                   level=0)])
    small = Image("small", [_layer("small", [("s/f", 1234)])])
    return {"multi": multi, "shared_a": shared_a, "shared_b": shared_b,
            "plat": plat, "large": large, "small": small}


KiB = 1024


def build_cluster_images():
    """Two 10-layer images for the cluster tests (test_cluster.py): "a"
    of about 6 MiB, layers of 64 KiB to 1 MiB, and "b" of about 1 MiB.
    Deterministic; no layer shared with each other or with the catalog."""
    sizes_a = [256, 384, 512, 640, 768, 128, 896, 1024, 64, 320]
    sizes_b = [48, 96, 144, 192, 80, 112, 64, 128, 160, 32]
    out = {}
    for name, sizes in (("a", sizes_a), ("b", sizes_b)):
        layers = [_layer("cluster-%s-%d" % (name, i),
                         [("c/%s/%d.bin" % (name, i), s * KiB)], level=0)
                  for i, s in enumerate(sizes)]
        out[name] = Image("cluster-" + name, layers)
    return out
