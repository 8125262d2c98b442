#!/usr/bin/env python3
"""A proxy that checks AWS SigV4 signatures (for tests, not shipped): it recomputes each
request's signature here, from the SigV4 specification with hashlib and hmac (not with the
aws-sigv4 crate that signed it), forwards the request to the upstream when the signature is
valid, and answers 403 security_exception, as Amazon OpenSearch Service does, when it is not.

    sigv4_check.py --upstream http://127.0.0.1:9200 --secret KEY --region eu-west-1 \\
        --service es --log checks.ndjson

Prints its port first. Logs one JSON line a request: method, path, valid, why, signed headers.
"""
import argparse
import hashlib
import hmac
import http.client
import json
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def check(method, target, headers, body, secret, region, service):
    """(valid, why, signed headers) for one request; headers lowercased."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False, "no AWS4-HMAC-SHA256 Authorization header", []
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    access_key, date, reg, svc, term = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    if (reg, svc, term) != (region, service, "aws4_request"):
        return False, f"credential scope {reg}/{svc}/{term}, expected {region}/{service}/aws4_request", signed
    if "host" not in signed or "x-amz-date" not in signed:
        return False, "host and x-amz-date must be signed", signed
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(date):
        return False, "x-amz-date does not match the credential date", signed
    payload = sha256(body)
    if headers.get("x-amz-content-sha256", payload) != payload:
        return False, "x-amz-content-sha256 is not the body's hash", signed
    parts = urllib.parse.urlsplit(target)
    # Services other than S3 encode each path segment twice.
    path = "/".join(urllib.parse.quote(urllib.parse.quote(seg, safe="-_.~"), safe="-_.~") for seg in (parts.path or "/").split("/")) or "/"
    query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    )
    canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    canonical = "\n".join([method, path, query, canonical_headers, ";".join(signed), payload])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, sha256(canonical.encode())])
    key = sign(sign(sign(sign(("AWS4" + secret).encode(), date), region), service), "aws4_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("Signature", "")):
        return False, "signature mismatch", signed
    return True, "ok", signed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    upstream = urllib.parse.urlsplit(args.upstream)
    log = open(args.log, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def handle_any(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            valid, why, signed = check(self.command, self.path, headers, body, args.secret, args.region, args.service)
            log.write(json.dumps({"method": self.command, "path": self.path, "valid": valid, "why": why, "signed": signed}) + "\n")
            if not valid:
                data = json.dumps({"error": {"type": "security_exception", "reason": f"the request signature is not valid: {why}"}, "status": 403}).encode()
                status, out_headers = 403, [("Content-Type", "application/json")]
            else:
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
                fwd = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                fwd["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=fwd)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_HEADERS]
                conn.close()
            self.send_response(status)
            for k, v in out_headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
