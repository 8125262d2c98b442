#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for tests (not shipped): it forwards real requests to an
emulator and, at a seeded rate, answers some of them with the faults no emulator produces.

    fault_proxy.py --upstream http://127.0.0.1:5000 --rate 0.2 --seed 7 --log faults.ndjson

Prints the port it listens on (loopback, a free port) as its first line of stdout.

Faults, chosen uniformly among those that fit the request:
- throttle     answer 400 ThrottlingException (PutEvents), 429 TooManyRequestsException
               (Lambda Invoke) or 400 ProvisionedThroughputExceededException (BatchWriteItem)
               without forwarding;
- error        answer 500 InternalFailure / ServiceException without forwarding;
- partial      PutEvents: forward a random subset of the entries and answer the others
               with ErrorCode ThrottlingException, as EventBridge does (FailedEntryCount > 0);
               DynamoDB BatchWriteItem: forward a subset and return the rest in
               UnprocessedItems, as DynamoDB does under load; the withheld items never reach
               the emulator;
- drop_before  close the connection without forwarding;
- drop_after   forward, then close the connection without answering: the request took effect
               but the caller cannot know, so its retry is a duplicate no client can avoid.

OpenSearch `_bulk` (POST …/_bulk): throttle answers 429 es_rejected_execution_exception, error
503, and partial forwards a subset and answers HTTP 200 with `errors: true` and the other items
429 es_rejected_execution_exception, as a loaded cluster does; "withheld" lists their _ids.

Each request is logged as one JSON line: {"fault": ..., "target": ..., "forwarded": [...]},
where "forwarded" lists what reached the emulator (PutEvents entries' Detail+Time+DetailType,
or the Invoke payload's id) so tests can tell unavoidable duplicates (drop_after) from real ones.
"""
import argparse
import http.client
import json
import random
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    upstream = urllib.parse.urlsplit(args.upstream)
    rng = random.Random(args.seed)
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1)

    def decide(choices):
        with lock:
            if rng.random() >= args.rate:
                return None
            return rng.choice(choices)

    def record(entry):
        with lock:
            log.write(json.dumps(entry) + "\n")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def forward(self, body):
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = (resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_HEADERS], data)
            conn.close()
            return out

        def reply(self, status, headers, data):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def drop(self):
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass

        def do_GET(self):
            self.reply(*self.forward(b""))

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            target = self.headers.get("X-Amz-Target", "")
            if target.endswith("PutEvents"):
                return self.put_events(body)
            if "/functions/" in self.path and self.path.endswith("/invocations"):
                return self.invoke(body)
            if target.endswith("BatchWriteItem"):
                return self.batch_write(body)
            if self.path.split("?")[0].endswith("/_bulk"):
                return self.bulk(body)
            self.reply(*self.forward(body))

        def bulk(self, body):
            lines = body.decode().splitlines()
            pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
            ident = lambda pair: next(iter(json.loads(pair[0]).values())).get("_id")
            headers = [("Content-Type", "application/json")]
            fault = decide(["throttle", "error", "partial", "partial", "partial", "drop_after"])
            if fault == "throttle":
                record({"fault": fault, "target": "_bulk", "forwarded": [], "withheld": [ident(p) for p in pairs]})
                return self.reply(429, headers, json.dumps({"error": {"type": "es_rejected_execution_exception", "reason": "injected: rejected execution of the whole request"}, "status": 429}).encode())
            if fault == "error":
                record({"fault": fault, "target": "_bulk", "forwarded": [], "withheld": [ident(p) for p in pairs]})
                return self.reply(503, headers, json.dumps({"error": {"type": "unavailable_shards_exception", "reason": "injected"}, "status": 503}).encode())
            if fault == "partial" and pairs:
                # As a loaded cluster does: HTTP 200, `errors: true`, some items 429.
                with lock:
                    keep = set(rng.sample(range(len(pairs)), rng.randint(0, len(pairs) - 1)))
                sent = [pairs[i] for i in sorted(keep)]
                results = []
                if sent:
                    status, _, data = self.forward(("\n".join(a + "\n" + d for a, d in sent) + "\n").encode())
                    if status != 200:
                        record({"fault": "partial-upstream-error", "target": "_bulk", "forwarded": [ident(p) for p in sent], "withheld": []})
                        return self.reply(status, headers, data)
                    results = json.loads(data)["items"]
                merged, it = [], iter(results)
                for i, pair in enumerate(pairs):
                    if i in keep:
                        merged.append(next(it))
                    else:
                        action = next(iter(json.loads(pair[0])))
                        merged.append({action: {"_index": json.loads(pair[0])[action].get("_index"), "_id": ident(pair), "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "injected: rejected execution of coordinating operation"}}})
                record({"fault": fault, "target": "_bulk", "forwarded": [ident(p) for p in sent], "withheld": [ident(pairs[i]) for i in range(len(pairs)) if i not in keep]})
                return self.reply(200, headers, json.dumps({"took": 1, "errors": True, "items": merged}).encode())
            status, resp_headers, data = self.forward(body)
            record({"fault": fault or "none", "target": "_bulk", "status": status, "forwarded": [ident(p) for p in pairs] if status == 200 else [], "withheld": []})
            if fault == "drop_after":
                return self.drop()
            self.reply(status, resp_headers, data)

        def batch_write(self, body):
            request = json.loads(body)
            items = [(t, w) for t, ws in request["RequestItems"].items() for w in ws]
            ident = lambda tw: json.dumps(tw[1]["PutRequest"]["Item"], sort_keys=True)
            headers = [("Content-Type", "application/x-amz-json-1.0")]
            fault = decide(["throttle", "error", "partial", "partial", "drop_before", "drop_after"])
            if fault == "throttle":
                record({"fault": fault, "target": "BatchWriteItem", "forwarded": []})
                return self.reply(400, headers, json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": "injected throttle"}).encode())
            if fault == "error":
                record({"fault": fault, "target": "BatchWriteItem", "forwarded": []})
                return self.reply(500, headers, json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "injected"}).encode())
            if fault == "drop_before":
                record({"fault": fault, "target": "BatchWriteItem", "forwarded": []})
                return self.drop()
            if fault == "partial" and len(items) > 0:
                with lock:
                    keep = set(rng.sample(range(len(items)), rng.randint(0, len(items) - 1)))
                sent = [items[i] for i in sorted(keep)]
                withheld = [items[i] for i in range(len(items)) if i not in keep]
                if sent:
                    forwarded = {}
                    for t, w in sent:
                        forwarded.setdefault(t, []).append(w)
                    status, _, data = self.forward(json.dumps({"RequestItems": forwarded}).encode())
                    if status != 200:
                        record({"fault": "partial-upstream-error", "target": "BatchWriteItem", "forwarded": [ident(i) for i in sent]})
                        return self.reply(status, headers, data)
                unprocessed = {}
                for t, w in withheld:
                    unprocessed.setdefault(t, []).append(w)
                record({"fault": fault, "target": "BatchWriteItem", "forwarded": [ident(i) for i in sent]})
                return self.reply(200, headers, json.dumps({"UnprocessedItems": unprocessed}).encode())
            status, resp_headers, data = self.forward(body)
            record({"fault": fault or "none", "target": "BatchWriteItem", "status": status, "forwarded": [ident(i) for i in items] if status == 200 else []})
            if fault == "drop_after":
                return self.drop()
            self.reply(status, [(k, v) for k, v in resp_headers if k.lower() != "x-amz-crc32"], data)

        def put_events(self, body):
            entries = json.loads(body)["Entries"]
            ident = lambda e: [e.get("DetailType"), e.get("Time"), e.get("Detail")]
            fault = decide(["throttle", "error", "partial", "partial", "drop_before", "drop_after"])
            json_headers = [("Content-Type", "application/x-amz-json-1.1")]
            if fault == "throttle":
                record({"fault": fault, "target": "PutEvents", "forwarded": []})
                return self.reply(400, json_headers, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode())
            if fault == "error":
                record({"fault": fault, "target": "PutEvents", "forwarded": []})
                return self.reply(500, json_headers, json.dumps({"__type": "InternalFailure", "message": "injected"}).encode())
            if fault == "drop_before":
                record({"fault": fault, "target": "PutEvents", "forwarded": []})
                return self.drop()
            if fault == "partial" and len(entries) > 0:
                with lock:
                    keep = sorted(rng.sample(range(len(entries)), rng.randint(0, len(entries) - 1)))
                sent = [entries[i] for i in keep]
                status, headers, data = self.forward(json.dumps({"Entries": sent}).encode()) if sent else (200, json_headers, b'{"Entries":[],"FailedEntryCount":0}')
                results = json.loads(data)["Entries"] if status == 200 else []
                merged, it = [], iter(results)
                for i in range(len(entries)):
                    if i in keep:
                        merged.append(next(it))
                    else:
                        merged.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "injected partial failure"})
                failed = sum(1 for e in merged if "ErrorCode" in e)
                record({"fault": fault, "target": "PutEvents", "forwarded": [ident(e) for e in sent]})
                return self.reply(200, json_headers, json.dumps({"Entries": merged, "FailedEntryCount": failed}).encode())
            status, headers, data = self.forward(body)
            record({"fault": fault or "none", "target": "PutEvents", "forwarded": [ident(e) for e in entries]})
            if fault == "drop_after":
                return self.drop()
            self.reply(status, headers, data)

        def invoke(self, body):
            try:
                event_id = json.loads(body).get("id")
            except ValueError:
                event_id = None
            fault = decide(["throttle", "error", "drop_before", "drop_after"])
            json_headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "")]
            if fault == "throttle":
                record({"fault": fault, "target": "Invoke", "forwarded": []})
                headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "TooManyRequestsException")]
                return self.reply(429, headers, json.dumps({"Type": "User", "message": "Rate exceeded", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}).encode())
            if fault == "error":
                record({"fault": fault, "target": "Invoke", "forwarded": []})
                headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "ServiceException")]
                return self.reply(500, headers, json.dumps({"message": "injected"}).encode())
            if fault == "drop_before":
                record({"fault": fault, "target": "Invoke", "forwarded": []})
                return self.drop()
            status, headers, data = self.forward(body)
            record({"fault": fault or "none", "target": "Invoke", "forwarded": [event_id]})
            if fault == "drop_after":
                return self.drop()
            self.reply(status, headers, data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
