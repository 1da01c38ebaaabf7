"""Throwaway certificates for the TLS tests, made with the openssl CLI
(package openssl, in scripts/install-deps.sh) in a test's temp dir.

    pki = make_pki(str(tmp_path / "pki"))
    pki.ca, pki.server_cert, pki.server_key        CA and 127.0.0.1's cert
    pki.client_cert, pki.client_key                a client cert by the CA
    other = make_ca(str(tmp_path / "other"), "other")   another CA
    server_context(pki, require_client_cert=False)     an ssl.SSLContext
    make_cert_dir(d, hashed_ca, bundle_ca)   a stand-in for /etc/ssl/certs
"""

import os
import shutil
import ssl
import subprocess
from collections import namedtuple

import pytest

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

Pki = namedtuple("Pki", "ca ca_key server_cert server_key client_cert "
                        "client_key")


def _openssl(*args):
    if not os.path.exists(OPENSSL):
        pytest.fail("openssl is missing (run `make deps`)", pytrace=False)
    p = subprocess.run([OPENSSL] + list(args), capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed:\n%s" % (args[0], p.stderr))


def make_ca(d, name):
    """A self-signed CA in d: (cert path, key path)."""
    os.makedirs(d, exist_ok=True)
    cert = os.path.join(d, name + "-ca.pem")
    key = os.path.join(d, name + "-ca.key")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=ocimirror test CA %s" % name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", key, "-out", cert)
    return cert, key


def _issue(d, name, ca, ca_key, subject, extensions):
    key = os.path.join(d, name + ".key")
    csr = os.path.join(d, name + ".csr")
    cert = os.path.join(d, name + ".pem")
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write(extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
             "-keyout", key, "-out", csr)
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
             "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert)
    return cert, key


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 (subjectAltName IP) and a
    client certificate, all in d."""
    ca, ca_key = make_ca(d, "test")
    server_cert, server_key = _issue(
        d, "server", ca, ca_key, "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n")
    client_cert, client_key = _issue(
        d, "client", ca, ca_key, "/CN=ocimirror test client",
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n")
    return Pki(ca, ca_key, server_cert, server_key, client_cert, client_key)


def server_context(pki, require_client_cert=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca)
    return ctx


def make_cert_dir(d, hashed_ca, bundle_ca):
    """A directory laid out like Debian's /etc/ssl/certs: hashed_ca under
    its subject hash ("<hash>.0", as OpenSSL looks a CA directory up) and
    bundle_ca as ca-certificates.crt.  Returns d."""
    os.makedirs(d, exist_ok=True)
    p = subprocess.run([OPENSSL, "x509", "-hash", "-noout", "-in",
                        hashed_ca], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl x509 -hash failed:\n" + p.stderr)
    shutil.copyfile(hashed_ca, os.path.join(d, p.stdout.strip() + ".0"))
    shutil.copyfile(bundle_ca, os.path.join(d, "ca-certificates.crt"))
    return d
