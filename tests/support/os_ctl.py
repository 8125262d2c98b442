#!/usr/bin/env python3
"""Reads and sets up an OpenSearch server for the tests (the independent side of the check: the
documents are read back with the server's own _search, not by rehydrate).

    os_ctl.py URL dump PATTERN        every document's _source, one JSON line each (numbers exact)
    os_ctl.py URL meta PATTERN        every document's "_id<TAB>_index", one line each
    os_ctl.py URL create INDEX JSON   creates INDEX with the body JSON (mappings)
    os_ctl.py URL template NAME JSON  puts the index template NAME
"""
import decimal
import json
import sys
import urllib.request


def call(method, url, body=None):
    data = None if body is None else body.encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read().decode()


def dumps(v):
    """JSON with Decimals written exactly as read."""
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k) + ":" + dumps(e) for k, e in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(dumps(e) for e in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def hits(url, pattern):
    call("POST", f"{url}/{pattern}/_refresh")
    text = call("GET", f"{url}/{pattern}/_search?size=10000")
    found = json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)
    total = found["hits"]["total"]["value"]
    assert total < 10000, "more documents than one page of _search"
    return found["hits"]["hits"]


def main():
    url, command = sys.argv[1], sys.argv[2]
    if command == "dump":
        for h in hits(url, sys.argv[3]):
            print(dumps(h["_source"]))
    elif command == "meta":
        for h in hits(url, sys.argv[3]):
            print(f"{h['_id']}\t{h['_index']}")
    elif command == "create":
        print(call("PUT", f"{url}/{sys.argv[3]}", sys.argv[4]))
    elif command == "template":
        print(call("PUT", f"{url}/_index_template/{sys.argv[3]}", sys.argv[4]))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
