"""What the soak's upstreams serve and its clients expect: a few hot
images pulled again and again, a tag list, referrers of a hot image, and
an endless series of cold images made on demand.

Both fake endpoints of the soak serve the same Catalog (its mappings are
handed to each FakeRegistry as blobs, manifests and tags), and the
clients check every answer against it.  A cold image is made from its
number alone, so its bytes are not kept: the catalog remembers which
digest belongs to which image (about 300 bytes an image) and keeps the
bytes of the last COLD_CACHE images only, making older ones again when
asked.
"""

import collections
import json
import random
import threading

from images import MT_OCI_CONFIG, MT_OCI_LAYER_GZIP, MT_OCI_MANIFEST, \
    canonical_json, sha256_digest

KiB = 1024
MiB = 1024 * KiB

HOT_IMAGES = 6
TAGGED_REPO = "soak/tagged"
TAGS = ["t%02d" % i for i in range(20)]
COLD_CACHE = 256
# cold layer sizes, drawn with these weights: most small, a few of MiBs
COLD_SIZES = [(2 * KiB, 30), (16 * KiB, 30), (96 * KiB, 25),
              (512 * KiB, 10), (2 * MiB, 5)]


class Item:
    """One blob or manifest: its bytes, digest and media type."""

    __slots__ = ("data", "digest", "media_type")

    def __init__(self, media_type, data):
        self.media_type = media_type
        self.data = data
        self.digest = sha256_digest(data)


class ImageSpec:
    """An image: its repository, tag, manifest, config and layers."""

    def __init__(self, repo, tag, manifest, config, layers):
        self.repo = repo
        self.tag = tag
        self.manifest = manifest
        self.config = config
        self.layers = layers

    def blobs(self):
        return [self.config] + self.layers


def make_image(repo, tag, seed, sizes):
    rng = random.Random("ocimirror-soak:" + seed)
    layers = [Item(MT_OCI_LAYER_GZIP, rng.randbytes(n)) for n in sizes]
    config = Item(MT_OCI_CONFIG, canonical_json({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"ocimirror.soak": seed}},
        "rootfs": {"type": "layers",
                   "diff_ids": [sha256_digest(l.data) for l in layers]}}))
    manifest = Item(MT_OCI_MANIFEST, canonical_json({
        "schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": config.media_type, "digest": config.digest,
                   "size": len(config.data)},
        "layers": [{"mediaType": l.media_type, "digest": l.digest,
                    "size": len(l.data)} for l in layers]}))
    return ImageSpec(repo, tag, manifest, config, layers)


def cold_sizes(n):
    rng = random.Random("ocimirror-soak-sizes:%d" % n)
    sizes, weights = zip(*COLD_SIZES)
    return rng.choices(sizes, weights, k=2)


class Catalog:
    """The soak's content.  Thread-safe: the fakes' handler threads and
    the clients read it at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self.static_blobs = {}               # digest -> bytes
        self.static_manifests = {}           # (repo, digest) -> (mt, bytes)
        self.static_tags = {}                # repo -> {tag: digest}
        self.cold_digests = {}               # digest -> cold image number
        self._cold = collections.OrderedDict()   # number -> ImageSpec
        self.hot = []
        for i in range(HOT_IMAGES):
            sizes = [4 * KiB, 64 * KiB, 1 * MiB] if i % 2 else \
                [512, 256 * KiB, 3 * MiB]
            self.hot.append(self._add_static(make_image(
                "soak/hot-%d" % i, "v1", "hot-%d" % i, sizes)))
        tagged = self._add_static(make_image(TAGGED_REPO, TAGS[0], "tagged",
                                             [1000]))
        for t in TAGS:
            self.static_tags[TAGGED_REPO][t] = tagged.manifest.digest
        # two artifacts that refer to the first hot image's manifest
        self.subject = self.hot[0]
        self.referrers = []
        for n, at in enumerate(("application/vnd.soak.sig",
                                "application/vnd.soak.sbom")):
            self.referrers.append(self._add_referrer(self.subject, at, n))
        self.blobs = _Blobs(self)
        self.manifests = _Manifests(self)
        self.tags = _Tags(self)

    def _add_static(self, im):
        for b in im.blobs():
            self.static_blobs[b.digest] = b.data
        self.static_manifests[(im.repo, im.manifest.digest)] = (
            im.manifest.media_type, im.manifest.data)
        self.static_tags.setdefault(im.repo, {})[im.tag] = \
            im.manifest.digest
        return im

    def _add_referrer(self, subject, artifact_type, n):
        layer = ("soak referrer %d" % n).encode()
        empty = b"{}"
        for b in (layer, empty):
            self.static_blobs[sha256_digest(b)] = b
        m = Item(MT_OCI_MANIFEST, canonical_json({
            "schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": sha256_digest(empty), "size": 2},
            "layers": [{"mediaType": "application/octet-stream",
                        "digest": sha256_digest(layer),
                        "size": len(layer)}],
            "subject": {"mediaType": subject.manifest.media_type,
                        "digest": subject.manifest.digest,
                        "size": len(subject.manifest.data)}}))
        self.static_manifests[(subject.repo, m.digest)] = (m.media_type,
                                                           m.data)
        return m

    # --- cold images --------------------------------------------------

    @staticmethod
    def cold_repo(n):
        return "soak/cold-%d" % n

    def cold(self, n):
        """Cold image number n (made, or taken from the recent ones)."""
        with self._lock:
            im = self._cold.get(n)
            if im is not None:
                self._cold.move_to_end(n)
                return im
        im = make_image(self.cold_repo(n), "v1", "cold-%d" % n,
                        cold_sizes(n))
        with self._lock:
            self._cold[n] = im
            while len(self._cold) > COLD_CACHE:
                self._cold.popitem(last=False)
            for item in [im.manifest] + im.blobs():
                self.cold_digests[item.digest] = n
        return im

    def cold_number(self, repo):
        if not repo.startswith("soak/cold-"):
            return None
        try:
            return int(repo[len("soak/cold-"):])
        except ValueError:
            return None

    def blob(self, digest):
        data = self.static_blobs.get(digest)
        if data is not None:
            return data
        n = self.cold_digests.get(digest)
        if n is None:
            return None
        for b in self.cold(n).blobs():
            if b.digest == digest:
                return b.data
        return None


class _Blobs:
    """Catalog.blobs as a FakeRegistry reads it (in, [])."""

    def __init__(self, cat):
        self.cat = cat

    def __contains__(self, digest):
        return self.cat.blob(digest) is not None

    def __getitem__(self, digest):
        data = self.cat.blob(digest)
        if data is None:
            raise KeyError(digest)
        return data

    def __setitem__(self, digest, data):
        self.cat.static_blobs[digest] = data


class _Manifests:
    """Catalog.manifests as a FakeRegistry reads it.  items() lists the
    fixed manifests only: a referrers list walks it, and cold images have
    no referrers."""

    def __init__(self, cat):
        self.cat = cat

    def get(self, key, default=None):
        repo, digest = key
        v = self.cat.static_manifests.get(key)
        if v is not None:
            return v
        n = self.cat.cold_number(repo)
        if n is None or digest is None:
            return default
        im = self.cat.cold(n)
        if im.manifest.digest != digest:
            return default
        return (im.manifest.media_type, im.manifest.data)

    def __contains__(self, key):
        return self.get(key) is not None

    def __getitem__(self, key):
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key, value):
        self.cat.static_manifests[key] = value

    def items(self):
        return list(self.cat.static_manifests.items())


class _Tags:
    """Catalog.tags as a FakeRegistry reads it: every cold repository
    has its tag v1."""

    def __init__(self, cat):
        self.cat = cat

    def get(self, repo, default=None):
        v = self.cat.static_tags.get(repo)
        if v is not None:
            return v
        n = self.cat.cold_number(repo)
        if n is None:
            return default
        return {"v1": self.cat.cold(n).manifest.digest}

    def __contains__(self, repo):
        return self.get(repo) is not None

    def __getitem__(self, repo):
        v = self.get(repo)
        if v is None:
            raise KeyError(repo)
        return v

    def setdefault(self, repo, default):
        return self.cat.static_tags.setdefault(repo, default)


def referrers_expected(cat):
    """The digests a referrers list of the subject must name."""
    return sorted(m.digest for m in cat.referrers)


def tags_expected():
    return sorted(TAGS)


def parse_json(body):
    return json.loads(body)
