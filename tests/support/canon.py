#!/usr/bin/env python3
"""The independent oracle for populate tests: reads NDJSON on stdin and prints each record in one
canonical form, sorted, so that what a store holds can be compared with the source exactly.

    canon.py plain   records are plain JSON (the source events, psql's row_to_json, …)
    canon.py ddb     records are DynamoDB JSON items ({"attr": {"S": …}}), as boto3 returns them

Numbers are read as Decimal (never through a float) and printed normalised (2.50 -> 2.5), so an
integer above 2^53 or a long decimal that lost a digit anywhere shows up as a difference. A
field named `time` is normalised to UTC with milliseconds. Strings are compared as they are.
"""
import datetime
import decimal
import json
import sys


def from_ddb(v):
    (t, x), = v.items()
    if t == "S":
        return x
    if t == "N":
        return decimal.Decimal(x)
    if t == "BOOL":
        return x
    if t == "NULL":
        return None
    if t == "L":
        return [from_ddb(e) for e in x]
    if t == "M":
        return {k: from_ddb(e) for k, e in x.items()}
    if t == "B":
        return {"$binary": x}
    raise ValueError(f"unexpected DynamoDB type {t}")


def utc_ms(text):
    t = datetime.datetime.fromisoformat(text.replace(" ", "T"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    t = t.astimezone(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def canon(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, decimal.Decimal)):
        d = decimal.Decimal(v)
        if d == d.to_integral_value():
            return {"$n": str(int(d))}
        return {"$n": str(d.normalize())}
    if isinstance(v, list):
        return [canon(e) for e in v]
    if isinstance(v, dict):
        return {k: (utc_ms(e) if k == "time" and isinstance(e, str) else canon(e)) for k, e in v.items()}
    raise TypeError(type(v))


def main():
    decimal.getcontext().prec = 100
    mode = sys.argv[1]
    out = []
    for line in sys.stdin:
        if not line.strip():
            continue
        rec = json.loads(line, parse_float=decimal.Decimal, parse_int=decimal.Decimal)
        if mode == "ddb":
            rec = {k: from_ddb(v) for k, v in rec.items()}
        out.append(json.dumps(canon(rec), sort_keys=True, ensure_ascii=False))
    for line in sorted(out):
        print(line)


if __name__ == "__main__":
    main()
