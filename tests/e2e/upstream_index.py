"""A local upstream for the end-to-end tests: a static PEP 503 tree served
by Debian's nginx on loopback, standing in for PyPI.

StaticIndex writes the tree::

    ROOT/simple/index.html                 the project list
    ROOT/simple/<normalized>/index.html    one page per project
    ROOT/packages/<file>                   the files
    ROOT/packages/<file>.metadata          PEP 658 core metadata (optional)

Anchors look like PyPI's::

    <a href="../../packages/<file>#sha256=<hex>" data-requires-python="&gt;=3.7"
       data-core-metadata="sha256=<hex>" data-dist-info-metadata="sha256=<hex>">file</a>

Nginx serves such a tree (or several) from a generated config with an access
log of "<status> <method> <path> ..." lines, so a test can count what the
upstream really served: Nginx.requests("/packages/alpha-2.0-") == 1.

Stdlib only; importable next to harness.py.
"""

import hashlib
import html
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time

import harness
import makewheel

NGINX = "/usr/sbin/nginx"


def normalize(name):
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_of(filename):
    """The normalised project name of a wheel or sdist filename."""
    if filename.endswith(".whl"):
        return normalize(filename.split("-")[0])
    for ext in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if filename.endswith(ext):
            stem = filename[: -len(ext)]
            return normalize(stem.rsplit("-", 1)[0])
    raise ValueError("cannot tell the project of %r" % filename)


# The METADATA bytes inside the wheel at PATH.
wheel_metadata = makewheel.read_metadata


def make_sdist(outdir, name, version, requires=()):
    """Write a real, tiny setuptools sdist NAME-VERSION.tar.gz into OUTDIR:
    PKG-INFO, pyproject.toml (setuptools build backend), setup.py and a
    package whose __init__ records the version. Returns its path."""
    pkg = re.sub(r"[^a-z0-9_]", "_", name.lower())
    base = "%s-%s" % (name, version)
    reqs = "".join("Requires-Dist: %s\n" % r for r in requires)
    files = {
        "PKG-INFO": ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
                     "Summary: wheelmesh e2e sdist\n%s\n"
                     % (name, version, reqs)),
        "pyproject.toml": ('[build-system]\n'
                           'requires = ["setuptools>=40.8.0", "wheel"]\n'
                           'build-backend = "setuptools.build_meta"\n'),
        "setup.py": ("from setuptools import setup\n"
                     "setup(name=%r, version=%r, packages=[%r],\n"
                     "      install_requires=%r)\n"
                     % (name, version, pkg, list(requires))),
        "%s/__init__.py" % pkg: '__version__ = "%s"\nFROM_SDIST = True\n'
                                % version,
    }
    path = os.path.join(outdir, base + ".tar.gz")
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for rel, text in sorted(files.items()):
            data = text.encode()
            ti = tarfile.TarInfo("%s/%s" % (base, rel))
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 1577836800
            tf.addfile(ti, io.BytesIO(data))
    return path


class StaticIndex:
    """A static PEP 503 tree in a temporary directory (or ROOT).

    add(path) copies a wheel/sdist into packages/ (a file already there is
    used in place) and lists it on its project's page; add_fake() lists a
    file that does not exist (for big pages). Pages are rewritten on every
    change unless write=False; call write() afterwards then.
    """

    def __init__(self, root=None, requires_python=">=3.7"):
        self.root = root or tempfile.mkdtemp(prefix="wm-upstream-")
        self.simple = os.path.join(self.root, "simple")
        self.packages = os.path.join(self.root, "packages")
        os.makedirs(self.simple, exist_ok=True)
        os.makedirs(self.packages, exist_ok=True)
        self.requires_python = requires_python
        # project -> {filename: entry}; entry = {"filename", "sha256",
        # "metadata_sha256" or None, "requires_python", "path" or None}
        self.projects = {}
        self._originals = {}  # filename -> bytes before tamper()
        self.write()

    # -- building --------------------------------------------------------

    def path(self, filename):
        return os.path.join(self.packages, filename)

    def add(self, src, project=None, metadata=False, requires_python=None,
            write=True):
        """List the file SRC. METADATA: False (no PEP 658 file), True (the
        wheel's own METADATA) or bytes (written as the .metadata file, e.g.
        to advertise wrong metadata). Returns the entry dict."""
        filename = os.path.basename(src)
        dest = self.path(filename)
        if os.path.abspath(src) != os.path.abspath(dest):
            shutil.copyfile(src, dest)
        meta_sha = None
        if metadata is not False:
            data = wheel_metadata(dest) if metadata is True else metadata
            with open(dest + ".metadata", "wb") as f:
                f.write(data)
            meta_sha = hashlib.sha256(data).hexdigest()
        entry = {"filename": filename, "sha256": makewheel.sha256_file(dest),
                 "metadata_sha256": meta_sha, "path": dest,
                 "requires_python": (requires_python
                                     if requires_python is not None
                                     else self.requires_python)}
        proj = normalize(project) if project else project_of(filename)
        self.projects.setdefault(proj, {})[filename] = entry
        if write:
            self.write(proj)
        return entry

    def add_fake(self, project, filename, sha256=None, write=True, url=None):
        """List FILENAME with SHA256 (random when None) without a file.
        URL, when given, is the link's absolute target (e.g. a port nothing
        listens on) instead of ../../packages/FILENAME."""
        sha256 = sha256 or os.urandom(32).hex()
        entry = {"filename": filename, "sha256": sha256,
                 "metadata_sha256": None, "path": None,
                 "requires_python": self.requires_python}
        if url is not None:
            entry["url"] = url
        proj = normalize(project)
        self.projects.setdefault(proj, {})[filename] = entry
        if write:
            self.write(proj)
        return entry

    def remove(self, filename, write=True):
        for proj, files in self.projects.items():
            if filename in files:
                del files[filename]
                if write:
                    self.write(proj)
                return
        raise KeyError(filename)

    def entry(self, filename):
        for files in self.projects.values():
            if filename in files:
                return files[filename]
        raise KeyError(filename)

    def page_path(self, project):
        return os.path.join(self.simple, normalize(project), "index.html")

    @staticmethod
    def anchor(entry):
        target = (html.escape(entry["url"]) if entry.get("url")
                  else "../../packages/%s" % html.escape(entry["filename"]))
        attrs = ['href="%s#sha256=%s"' % (target, entry["sha256"])]
        if entry.get("requires_python"):
            attrs.append('data-requires-python="%s"'
                         % html.escape(entry["requires_python"]))
        if entry.get("metadata_sha256"):
            v = "sha256=" + entry["metadata_sha256"]
            attrs.append('data-core-metadata="%s"' % v)
            attrs.append('data-dist-info-metadata="%s"' % v)
        return "<a %s>%s</a><br/>" % (" ".join(attrs),
                                      html.escape(entry["filename"]))

    def render(self, project):
        proj = normalize(project)
        lines = ["<!DOCTYPE html>", "<html>",
                 "<head><meta name=\"pypi:repository-version\" "
                 "content=\"1.0\"><title>Links for %s</title></head>" % proj,
                 "<body>", "<h1>Links for %s</h1>" % proj]
        for fn in sorted(self.projects.get(proj, {})):
            lines.append(self.anchor(self.projects[proj][fn]))
        lines += ["</body>", "</html>", ""]
        return "\n".join(lines)

    def write(self, project=None):
        """(Re)write PROJECT's page (every page when None) and the root
        list. Files are replaced atomically, so nginx never serves half a
        page."""
        projects = [normalize(project)] if project else list(self.projects)
        for proj in projects:
            self._atomic(self.page_path(proj), self.render(proj).encode())
        root = ["<!DOCTYPE html>", "<html><body>"]
        for proj in sorted(self.projects):
            root.append('<a href="%s/">%s</a><br/>' % (proj, proj))
        root += ["</body></html>", ""]
        self._atomic(os.path.join(self.simple, "index.html"),
                     "\n".join(root).encode())

    def write_raw_page(self, project, text):
        """Replace PROJECT's page with TEXT as it is."""
        self._atomic(self.page_path(project),
                     text.encode() if isinstance(text, str) else text)

    @staticmethod
    def _atomic(path, data):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    # -- tampering -------------------------------------------------------

    def tamper(self, filename, data=None):
        """Change FILENAME's bytes on disk but not the hash on its page.
        DATA replaces the bytes; by default one byte in the middle is
        flipped (same size). Returns the new bytes' sha256."""
        p = self.path(filename)
        with open(p, "rb") as f:
            orig = f.read()
        self._originals.setdefault(filename, orig)
        if data is None:
            b = bytearray(orig)
            b[len(b) // 2] ^= 0xFF
            data = bytes(b)
        self._atomic(p, data)
        return hashlib.sha256(data).hexdigest()

    def restore(self, filename):
        """Put back the bytes tamper() replaced."""
        self._atomic(self.path(filename), self._originals.pop(filename))

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


class NginxError(AssertionError):
    pass


def location_for(filename, directives):
    """An nginx location block (for Nginx's EXTRA) that applies DIRECTIVES
    to /packages/FILENAME only."""
    return "        location = /packages/%s {\n            %s\n        }\n" % (
        filename, directives)


LOG_RE = re.compile(r'^(\d{3}) (\S+) "([^"]*)" (\d+) inm="([^"]*)" '
                    r'ims="([^"]*)"(?: range="([^"]*)")?$')


class Nginx:
    """Debian's nginx serving ROOT (a StaticIndex or a directory) on a free
    127.0.0.1 port, in the foreground, with everything it writes in its own
    temporary directory.

    .url is the simple index URL. Access-log lines are
    '<status> <method> "<request uri>" <bytes> inm="..." ims="..."
    range="..."', one per request; entries() parses them, requests() counts
    them.

    EXTRA is nginx configuration put inside the server block, after the
    default locations: e.g. location_for(filename, "return 503;") makes one
    file answer 503, location_for(filename, "max_ranges 0;") makes nginx
    ignore Range for it."""

    def __init__(self, root, port=None, start=True, extra=""):
        self.tree = root.root if isinstance(root, StaticIndex) else root
        self.dir = tempfile.mkdtemp(prefix="wm-nginx-")
        self.port = port or harness.free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        self.proc = None
        self.extra = extra
        self._write_conf()
        if start:
            self.start()

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def url(self):
        return self.base + "/simple/"

    def _write_conf(self):
        d = self.dir
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = """\
%(user)sworker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 512; }
http {
    log_format wm '$status $request_method "$request_uri" $body_bytes_sent '
                  'inm="$http_if_none_match" ims="$http_if_modified_since" '
                  'range="$http_range"';
    access_log %(d)s/access.log wm;
    client_body_temp_path %(d)s/client_body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    types {
        text/html html;
        application/octet-stream whl metadata;
        application/gzip gz;
    }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:%(port)d;
        server_name localhost;
        root %(tree)s;
        location /simple/ {
            default_type text/html;
            index index.html;
        }
        location / {
        }
%(extra)s
    }
}
""" % {"user": user, "d": d, "port": self.port, "tree": self.tree,
       "extra": self.extra}
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self, timeout=10.0):
        """Start nginx (again, on the same port) and wait until it accepts
        connections."""
        if self.running():
            return self
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [NGINX, "-c", self.conf, "-p", self.dir + "/",
                 "-e", self.error_log, "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NginxError("nginx exited with %s\n%s"
                                 % (self.proc.returncode, self.tail()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise NginxError("nginx not listening on %d after %.0f s\n%s"
                         % (self.port, timeout, self.tail()))

    def stop(self, timeout=10.0):
        """Stop nginx (SIGTERM: fast shutdown) and wait until the port is
        closed."""
        if not self.running():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the access log ----------------------------------------------------

    def _lines(self):
        try:
            with open(self.access_log, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []

    def entries(self, settle=0.2):
        """Every logged request as a dict {status, method, path, bytes,
        inm, ims, range}. nginx logs a request when it has finished it, a
        moment after the client saw the last byte: wait until the log stops
        growing for SETTLE seconds (at most 3 s)."""
        lines = self._lines()
        deadline = time.monotonic() + 3.0
        while settle and time.monotonic() < deadline:
            time.sleep(settle)
            again = self._lines()
            if len(again) == len(lines):
                break
            lines = again
        out = []
        for line in lines:
            m = LOG_RE.match(line)
            if not m:
                continue
            out.append({"status": int(m.group(1)), "method": m.group(2),
                        "path": m.group(3), "bytes": int(m.group(4)),
                        "inm": "" if m.group(5) == "-" else m.group(5),
                        "ims": "" if m.group(6) == "-" else m.group(6),
                        "range": ("" if m.group(7) in (None, "-")
                                  else m.group(7)),
                        "line": line})
        return out

    def requests(self, substring="", status=None, exact=None, settle=0.2):
        """How many logged requests have a path containing SUBSTRING (or
        equal to EXACT) and, when given, the status STATUS."""
        n = 0
        for e in self.entries(settle):
            if exact is not None and e["path"] != exact:
                continue
            if substring not in e["path"]:
                continue
            if status is not None and e["status"] != status:
                continue
            n += 1
        return n

    def log_text(self, last=40):
        return "\n".join(self._lines()[-last:])

    def tail(self, n=20):
        out = "--- nginx :%d access log (last %d) ---\n%s" % (
            self.port, n, self.log_text(n))
        try:
            with open(self.error_log, "rb") as f:
                err = f.read().decode("utf-8", "replace").splitlines()
            out += "\n--- nginx error log (last %d) ---\n%s" % (
                n, "\n".join(err[-n:]))
        except FileNotFoundError:
            pass
        try:
            with open(self.stderr_path, "rb") as f:
                s = f.read().decode("utf-8", "replace").strip()
            if s:
                out += "\n--- nginx stderr ---\n" + s[-2000:]
        except FileNotFoundError:
            pass
        return out

    def __repr__(self):
        return "<Nginx %s root=%s>" % (self.url, self.tree)


if __name__ == "__main__":
    import sys
    sys.exit("upstream_index.py is a module for the tests")
