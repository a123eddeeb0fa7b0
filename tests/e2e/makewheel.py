"""Generate valid Python wheels for the end-to-end tests.

A generated wheel is a real, installable wheel: a package directory with an
``__init__.py`` (which records the version and build tag, so a test can tell
which file pip picked), an optional payload of SIZE pseudo-random bytes, and
a ``.dist-info`` with METADATA, WHEEL and a RECORD whose sha256 digests and
sizes are right (pip checks them on install).

The payload is stored (ZIP_STORED), so a 200 MB wheel takes about a second.
With SEED the bytes, and so the whole file, are reproducible; without it they
come from os.urandom and every call makes a different file.

Usable as a module (``make_wheel(...)``) or from the shell::

    python3 makewheel.py -o DIR NAME VERSION [--size N] [--requires SPEC]...
                         [--build TAG] [--tag PY-ABI-PLAT]
"""

import argparse
import base64
import hashlib
import os
import random
import re
import sys
import zipfile

CHUNK = 1 << 20
_EPOCH = (2020, 1, 1, 0, 0, 0)


def escape_name(name):
    """The distribution name as it appears in a wheel filename."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", name)


def escape_version(version):
    return version.replace("-", "_")


def wheel_filename(name, version, build=None, tag="py3-none-any"):
    parts = [escape_name(name), escape_version(version)]
    if build:
        parts.append(build)
    parts.append(tag)
    return "-".join(parts) + ".whl"


def _record_hash(data_or_digest):
    digest = data_or_digest
    if not isinstance(digest, bytes) or len(digest) != 32:
        digest = hashlib.sha256(data_or_digest).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _zinfo(path):
    zi = zipfile.ZipInfo(path, date_time=_EPOCH)
    zi.external_attr = 0o644 << 16
    zi.compress_type = zipfile.ZIP_STORED
    return zi


def _random_pieces(size, seed):
    rng = random.Random(seed) if seed is not None else None
    left = size
    while left > 0:
        n = min(CHUNK, left)
        yield rng.randbytes(n) if rng else os.urandom(n)
        left -= n


def metadata_text(name, version, requires=(), requires_python=None,
                  summary=None):
    lines = [
        "Metadata-Version: 2.1",
        "Name: %s" % name,
        "Version: %s" % version,
        "Summary: %s" % (summary or "wheelmesh e2e test wheel %s %s"
                         % (name, version)),
    ]
    if requires_python:
        lines.append("Requires-Python: %s" % requires_python)
    for r in requires:
        lines.append("Requires-Dist: %s" % r)
    return "\n".join(lines) + "\n\n"


def make_wheel(outdir, name, version, size=0, requires=(), build=None,
               tag="py3-none-any", metadata_name=None, metadata_version=None,
               seed=None, requires_python=None, filename=None,
               payload=None):
    """Write a wheel into OUTDIR and return its path.

    METADATA_NAME / METADATA_VERSION, when given, are used for the
    .dist-info directory and the METADATA fields instead of NAME / VERSION:
    the result is a well-formed zip whose contents do not match its
    filename. FILENAME overrides the file's name altogether. PAYLOAD, when
    given, is a function (size) -> iterable of byte blocks for the payload
    (default: random pieces, reproducible with SEED).
    """
    md_name = metadata_name if metadata_name is not None else name
    md_version = metadata_version if metadata_version is not None else version
    fname = filename or wheel_filename(name, version, build, tag)
    path = os.path.join(outdir, fname)
    pkg = re.sub(r"[^a-z0-9_]", "_", md_name.lower())
    distinfo = "%s-%s.dist-info" % (escape_name(md_name),
                                    escape_version(md_version))
    record = []

    def add(zf, arcname, data):
        zf.writestr(_zinfo(arcname), data)
        record.append("%s,%s,%d" % (arcname, _record_hash(data), len(data)))

    py_tag, _abi, _plat = tag.split("-", 2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        init = ('__version__ = "%s"\nBUILD = "%s"\n'
                % (md_version, build or "")).encode()
        add(zf, pkg + "/__init__.py", init)
        if size > 0:
            arc = pkg + "/payload.bin"
            h = hashlib.sha256()
            with zf.open(_zinfo(arc), "w",
                         force_zip64=size >= (1 << 31)) as f:
                pieces = (payload(size) if payload is not None
                          else _random_pieces(size, seed))
                for piece in pieces:
                    h.update(piece)
                    f.write(piece)
            record.append("%s,%s,%d" % (arc, _record_hash(h.digest()), size))
        add(zf, distinfo + "/METADATA",
            metadata_text(md_name, md_version, requires,
                          requires_python).encode())
        wheel = ["Wheel-Version: 1.0",
                 "Generator: wheelmesh-e2e-makewheel",
                 "Root-Is-Purelib: true"]
        _, abi, plat = tag.split("-", 2)
        for py in py_tag.split("."):
            for a in abi.split("."):
                for p in plat.split("."):
                    wheel.append("Tag: %s-%s-%s" % (py, a, p))
        if build:
            wheel.append("Build: %s" % build)
        add(zf, distinfo + "/WHEEL", ("\n".join(wheel) + "\n\n").encode())
        record.append(distinfo + "/RECORD,,")
        zf.writestr(_zinfo(distinfo + "/RECORD"),
                    ("\n".join(record) + "\n").encode())
    return path


def read_metadata(path):
    """The bytes of the METADATA file inside the wheel at PATH."""
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist()
                 if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(names) != 1:
            raise ValueError("%s: %d METADATA files" % (path, len(names)))
        return zf.read(names[0])


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(CHUNK), b""):
            h.update(piece)
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a valid test wheel.")
    ap.add_argument("-o", "--outdir", default=".")
    ap.add_argument("name")
    ap.add_argument("version")
    ap.add_argument("--size", type=int, default=0,
                    help="bytes of random payload")
    ap.add_argument("--requires", action="append", default=[],
                    help="a Requires-Dist line (repeatable)")
    ap.add_argument("--build", help="build tag, e.g. 1")
    ap.add_argument("--tag", default="py3-none-any")
    ap.add_argument("--seed", type=int, help="make the payload reproducible")
    args = ap.parse_args(argv)
    path = make_wheel(args.outdir, args.name, args.version, args.size,
                      args.requires, args.build, args.tag, seed=args.seed)
    print("%s %s" % (path, sha256_file(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
