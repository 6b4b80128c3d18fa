#!/usr/bin/env python3
"""A minimal image registry (the push and pull side of the Docker Registry
HTTP API v2) for make test-live's jenkins phase: the Jenkinsfile's Push
stage logs in and pushes to it, and the test then reads the manifests back.
No auth (docker login succeeds against an open /v2/), loopback only, blobs
kept in a directory.

    registry.py PORT DIR
"""
import hashlib
import json
import os
import re
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, ROOT = int(sys.argv[1]), sys.argv[2]
os.makedirs(os.path.join(ROOT, "blobs"), exist_ok=True)
os.makedirs(os.path.join(ROOT, "uploads"), exist_ok=True)
os.makedirs(os.path.join(ROOT, "manifests"), exist_ok=True)

NAME = r"(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("registry: " + (fmt % args) + "\n")

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def reply(self, code, headers=None, data=b""):
        self.send_response(code)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def blob_path(self, digest):
        return os.path.join(ROOT, "blobs", digest.replace(":", "_"))

    def manifest_path(self, name, ref):
        return os.path.join(ROOT, "manifests", name.replace("/", "_") + "@" + ref.replace(":", "_"))

    def route(self):
        path, _, query = self.path.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        if path in ("/v2", "/v2/"):
            return self.reply(200, {"Content-Type": "application/json"}, b"{}")
        m = re.fullmatch(r"/v2/" + NAME + r"/blobs/(?P<digest>sha256:[a-f0-9]{64})", path)
        if m and self.command in ("HEAD", "GET"):
            p = self.blob_path(m["digest"])
            if not os.path.exists(p):
                return self.reply(404)
            data = open(p, "rb").read()
            return self.reply(200, {"Docker-Content-Digest": m["digest"], "Content-Type": "application/octet-stream"}, data)
        m = re.fullmatch(r"/v2/" + NAME + r"/blobs/uploads/?", path)
        if m and self.command == "POST":
            self.body()
            u = uuid.uuid4().hex
            open(os.path.join(ROOT, "uploads", u), "wb").close()
            loc = "/v2/%s/blobs/uploads/%s" % (m["name"], u)
            return self.reply(202, {"Location": loc, "Docker-Upload-UUID": u, "Range": "0-0"})
        m = re.fullmatch(r"/v2/" + NAME + r"/blobs/uploads/(?P<u>[a-f0-9]{32})", path)
        if m and self.command in ("PATCH", "PUT"):
            up = os.path.join(ROOT, "uploads", m["u"])
            with open(up, "ab") as f:
                f.write(self.body())
            size = os.path.getsize(up)
            if self.command == "PATCH":
                loc = "/v2/%s/blobs/uploads/%s" % (m["name"], m["u"])
                return self.reply(202, {"Location": loc, "Docker-Upload-UUID": m["u"], "Range": "0-%d" % max(size - 1, 0)})
            digest = params.get("digest", "").replace("%3A", ":")
            if "sha256:" + hashlib.sha256(open(up, "rb").read()).hexdigest() != digest:
                os.remove(up)
                return self.reply(400, {"Content-Type": "application/json"}, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
            os.replace(up, self.blob_path(digest))
            return self.reply(201, {"Location": "/v2/%s/blobs/%s" % (m["name"], digest), "Docker-Content-Digest": digest})
        m = re.fullmatch(r"/v2/" + NAME + r"/manifests/(?P<ref>[A-Za-z0-9_.:-]+)", path)
        if m and self.command == "PUT":
            data = self.body()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            doc = {"type": self.headers.get("Content-Type"), "manifest": data.decode()}
            for ref in (m["ref"], digest):
                with open(self.manifest_path(m["name"], ref), "w") as f:
                    json.dump(doc, f)
            return self.reply(201, {"Docker-Content-Digest": digest, "Location": "/v2/%s/manifests/%s" % (m["name"], digest)})
        if m and self.command in ("GET", "HEAD"):
            p = self.manifest_path(m["name"], m["ref"])
            if not os.path.exists(p):
                return self.reply(404)
            doc = json.load(open(p))
            data = doc["manifest"].encode()
            return self.reply(200, {"Content-Type": doc["type"], "Docker-Content-Digest": "sha256:" + hashlib.sha256(data).hexdigest()}, data)
        return self.reply(404)

    do_GET = do_HEAD = do_POST = do_PATCH = do_PUT = route


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
